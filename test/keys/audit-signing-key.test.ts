import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import {
  auditKeyId,
  deriveAuditSigningKey,
  exportPublicKeyPem,
  importPublicKeyPem,
} from '../../src/keys/audit-signing-key.js';
import { KeyError } from '../../src/keys/errors.js';

const vectorMasterKey = Buffer.from(Array.from({ length: 32 }, (_, i) => i));

function importError(pem: string): KeyError {
  let caught: unknown;
  try {
    importPublicKeyPem(pem, 'audit.pub');
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(KeyError);
  return caught as KeyError;
}

describe('deriveAuditSigningKey', () => {
  it('matches an independently computed vector', () => {
    // Computed with Python's cryptography package: HKDF-SHA256 of bytes 0..31 with info
    // "deputy audit checkpoint v1" as the Ed25519 seed.
    const key = deriveAuditSigningKey(vectorMasterKey);
    const raw = Buffer.from(key.publicKey.export({ format: 'jwk' }).x!, 'base64url');

    expect(raw.toString('hex')).toBe(
      '87b359204dd6a41309fc6bf9fafa3655d5c743b15b603a907f00ab1af7013d00',
    );
    expect(key.keyId).toBe('9f3a98416c61fcb3');
  });

  it('is deterministic', () => {
    const master = randomBytes(32);
    const first = deriveAuditSigningKey(master);
    const second = deriveAuditSigningKey(master);

    expect(second.keyId).toBe(first.keyId);
    expect(exportPublicKeyPem(second.publicKey)).toBe(exportPublicKeyPem(first.publicKey));
  });

  it('differs between master keys', () => {
    const first = deriveAuditSigningKey(randomBytes(32));
    const second = deriveAuditSigningKey(randomBytes(32));

    expect(second.keyId).not.toBe(first.keyId);
  });

  it('produces a key pair that signs and verifies', () => {
    const key = deriveAuditSigningKey(randomBytes(32));
    const signature = sign(null, Buffer.from('checkpoint'), key.privateKey);

    expect(verify(null, Buffer.from('checkpoint'), key.publicKey, signature)).toBe(true);
    expect(key.keyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('rejects a master key of the wrong length', () => {
    expect(() => deriveAuditSigningKey(randomBytes(16))).toThrow(TypeError);
  });
});

describe('public key PEM', () => {
  it('round-trips through export and import', () => {
    const key = deriveAuditSigningKey(randomBytes(32));
    const pem = exportPublicKeyPem(key.publicKey);
    const imported = importPublicKeyPem(pem);
    const signature = sign(null, Buffer.from('checkpoint'), key.privateKey);

    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(auditKeyId(imported)).toBe(key.keyId);
    expect(verify(null, Buffer.from('checkpoint'), imported, signature)).toBe(true);
  });

  it('rejects text that is not PEM', () => {
    const error = importError('not a key');

    expect(error.code).toBe('ERR_PUBLIC_KEY_INVALID');
    expect(error.message).toContain('audit.pub');
  });

  it('rejects a private key without echoing it', () => {
    const key = deriveAuditSigningKey(randomBytes(32));
    const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const error = importError(pem);

    expect(error.code).toBe('ERR_PUBLIC_KEY_INVALID');
    expect(error.message).toContain('private key');
    expect(error.message).not.toContain(pem.split('\n')[1]);
  });

  it('rejects a key of another type', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const error = importError(publicKey.export({ type: 'spki', format: 'pem' }).toString());

    expect(error.code).toBe('ERR_PUBLIC_KEY_INVALID');
    expect(error.message).toContain('Ed25519');
  });
});
