/**
 * Federated tokens checked against a local JWK set: the same header and claim hardening as
 * Deputy's own tokens, with keys only from the caller's set.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';

import { exportJWK, type JSONWebKeySet, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { TokenErrorCode } from '../../src/tokens/errors.js';
import { verifyExternalToken, type VerifyExternalTokenOptions } from '../../src/tokens/verify.js';
import { at, type Canary, expectRejected, signWith, startCanary, T0 } from './helpers.js';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'https://deputy.example.test';

let rsa: KeyObject;
let rsaPublicPem: string;
let ec: KeyObject;
let jwks: JSONWebKeySet;
let canary: Canary;

beforeAll(async () => {
  const rsaPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const encryption = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  rsa = rsaPair.privateKey;
  rsaPublicPem = rsaPair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  ec = ecPair.privateKey;
  jwks = {
    keys: [
      { ...(await exportJWK(rsaPair.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ecPair.publicKey)), kid: 'ec-1' },
      { ...(await exportJWK(encryption.publicKey)), kid: 'enc-1', use: 'enc' },
    ],
  };
  canary = await startCanary();
});

afterAll(async () => {
  await canary.close();
});

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const merged: Record<string, unknown> = {
    iss: ISSUER,
    sub: 'repo:acme/api:ref:refs/heads/main',
    aud: AUDIENCE,
    iat: T0,
    exp: T0 + 600,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== undefined));
}

function signRsa(header: Record<string, unknown> = {}, overrides = {}): Promise<string> {
  return signWith(rsa, { alg: 'RS256', kid: 'rsa-1', typ: 'JWT', ...header }, claims(overrides));
}

function verify(token: string, options: Partial<VerifyExternalTokenOptions> = {}) {
  return verifyExternalToken(token, {
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks,
    algorithms: ['RS256', 'ES256'],
    now: at(T0 + 10),
    ...options,
  });
}

describe('verifyExternalToken', () => {
  it('accepts an RS256 token without jti', async () => {
    const payload = await verify(await signRsa());

    expect(payload.sub).toBe('repo:acme/api:ref:refs/heads/main');
    expect(payload.jti).toBeUndefined();
  });

  it('accepts an ES256 token from the same set', async () => {
    const token = await signWith(ec, { alg: 'ES256', kid: 'ec-1' }, claims());

    await expect(verify(token)).resolves.toMatchObject({ iss: ISSUER });
  });

  it('checks typ only when asked', async () => {
    const token = await signRsa({ typ: 'at+jwt' });

    await expect(verify(token)).resolves.toMatchObject({ iss: ISSUER });
    await expectRejected(() => verify(token, { typ: 'JWT' }), 'ERR_TOKEN_TYP');
  });

  const cases: Array<[string, () => Promise<string>, TokenErrorCode]> = [
    [
      'alg outside the list',
      () => {
        const key = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
        return signWith(key, { alg: 'ES384', kid: 'ec-1' }, claims());
      },
      'ERR_TOKEN_ALG',
    ],
    [
      'alg none',
      async () =>
        (await signRsa()).replace(
          /^[^.]+/,
          Buffer.from('{"alg":"none","kid":"rsa-1"}').toString('base64url'),
        ),
      'ERR_TOKEN_ALG',
    ],
    [
      'HS256 keyed with the RSA public key',
      () => {
        const secret = new TextEncoder().encode(rsaPublicPem);
        return signWith(secret, { alg: 'HS256', kid: 'rsa-1' }, claims());
      },
      'ERR_TOKEN_ALG',
    ],
    ['jku at the canary', () => signRsa({ jku: `${canary.url}/jwks` }), 'ERR_TOKEN_HEADER'],
    ['x5u at the canary', () => signRsa({ x5u: `${canary.url}/cert` }), 'ERR_TOKEN_HEADER'],
    ['embedded jwk', () => signRsa({ jwk: jwks.keys[0] }), 'ERR_TOKEN_HEADER'],
    ['unknown kid', () => signRsa({ kid: 'rsa-2' }), 'ERR_TOKEN_KID'],
    ['kid missing', () => signRsa({ kid: undefined }), 'ERR_TOKEN_KID'],
    [
      'kid of an encryption key',
      () => signWith(ec, { alg: 'ES256', kid: 'enc-1' }, claims()),
      'ERR_TOKEN_KID',
    ],
    [
      'kid of a key pinned to another alg',
      () => signWith(rsa, { alg: 'PS256', kid: 'rsa-1' }, claims()),
      'ERR_TOKEN_KID',
    ],
    [
      'kid of another key type',
      () => signWith(ec, { alg: 'ES256', kid: 'rsa-1' }, claims()),
      'ERR_TOKEN_KID',
    ],
    [
      'signature by another key',
      () =>
        signWith(
          generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
          { alg: 'RS256', kid: 'rsa-1' },
          claims(),
        ),
      'ERR_TOKEN_SIGNATURE',
    ],
    [
      'iss of another issuer',
      () => signRsa({}, { iss: 'https://evil.example.test' }),
      'ERR_TOKEN_ISSUER',
    ],
    [
      'aud with two values',
      () => signRsa({}, { aud: [AUDIENCE, 'https://other.example.test'] }),
      'ERR_TOKEN_AUDIENCE',
    ],
    ['expired', () => signRsa({}, { iat: T0 - 900, exp: T0 - 300 }), 'ERR_TOKEN_EXPIRED'],
    [
      'iat in the future',
      () => signRsa({}, { iat: T0 + 60, exp: T0 + 120 }),
      'ERR_TOKEN_NOT_YET_VALID',
    ],
    [
      'lifetime above the default maximum',
      () => signRsa({}, { exp: T0 + 3601 }),
      'ERR_TOKEN_CLAIMS',
    ],
    ['jti not a string', () => signRsa({}, { jti: 7 }), 'ERR_TOKEN_CLAIMS'],
    ['sub missing', () => signRsa({}, { sub: undefined }), 'ERR_TOKEN_CLAIMS'],
  ];

  it.each(cases)('rejects %s', async (_name, build, code) => {
    const token = await build();
    const error = await expectRejected(
      () => verify(token, { algorithms: ['RS256', 'PS256', 'ES256'] }),
      code,
    );
    expect(error.message).not.toContain(token.split('.')[2] ?? token);
  });

  it('never contacts the canary', () => {
    expect(canary.requests()).toBe(0);
  });

  it('honours a longer configured lifetime', async () => {
    const token = await signRsa({}, { exp: T0 + 7200 });

    await expect(verify(token, { maxTokenLifetimeSeconds: 7200 })).resolves.toMatchObject({
      exp: T0 + 7200,
    });
  });

  it('rejects symmetric or empty algorithm lists', async () => {
    const token = await signRsa();
    for (const algorithms of [['HS256'], ['none'], [], ['RS256', 'HS512']]) {
      await expect(verify(token, { algorithms })).rejects.toThrow(TypeError);
    }
  });

  it('rejects a set with a secret or private key', async () => {
    const token = await signRsa();
    const secret = { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'rsa-1' }] };
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const withPrivate = { keys: [{ ...(await exportJWK(privateKey)), kid: 'rsa-1' }] };

    await expect(verify(token, { jwks: secret })).rejects.toThrow(TypeError);
    await expect(verify(token, { jwks: withPrivate })).rejects.toThrow(TypeError);
  });
});
