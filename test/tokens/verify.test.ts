/** Issuing and verifying Deputy tokens: headers, clock tolerance, lifetimes and misuse. */
import { randomBytes } from 'node:crypto';

import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Database, openDatabase } from '../../src/storage/database.js';
import { TokenError } from '../../src/tokens/errors.js';
import { signToken } from '../../src/tokens/issue.js';
import { SigningKeyStore } from '../../src/tokens/signing-keys.js';
import { ACCESS_TOKEN_TYPE, IDENTITY_TOKEN_TYPE } from '../../src/tokens/types.js';
import { verifyToken, type VerifyTokenOptions } from '../../src/tokens/verify.js';
import { at, AUDIENCE, expectRejected, ISSUER, signWith, T0 } from './helpers.js';

const MAX_LIFETIME = 900;

let database: Database;
let store: SigningKeyStore;

beforeAll(async () => {
  database = await openDatabase(':memory:');
  store = new SigningKeyStore(database.db, randomBytes(32), {
    maxTokenLifetimeSeconds: MAX_LIFETIME,
  });
  await store.current();
});

afterAll(async () => {
  await database.close();
});

const baseClaims = { iss: ISSUER, aud: AUDIENCE, sub: 'agent:helper' };

function issue(lifetimeSeconds = 300, claims: Record<string, unknown> = baseClaims) {
  return signToken(store, { typ: ACCESS_TOKEN_TYPE, claims, lifetimeSeconds, now: at(T0) });
}

function verify(token: string, seconds: number, options: Partial<VerifyTokenOptions> = {}) {
  return verifyToken(store, token, {
    issuer: ISSUER,
    audience: AUDIENCE,
    typ: ACCESS_TOKEN_TYPE,
    now: at(seconds),
    ...options,
  });
}

/** Signs `claims` exactly as given with the store's current key. */
async function signRaw(claims: Record<string, unknown>): Promise<string> {
  const { kid, privateKey } = await store.current();
  return signWith(privateKey, { alg: 'ES256', kid, typ: ACCESS_TOKEN_TYPE }, claims);
}

describe('signToken', () => {
  it('sets the header, iat, exp and a random jti', async () => {
    const token = await issue();
    const header = decodeProtectedHeader(token);
    const claims = decodeJwt(token);

    expect(header).toEqual({ alg: 'ES256', kid: (await store.current()).kid, typ: 'at+jwt' });
    expect(claims.iat).toBe(T0);
    expect(claims.exp).toBe(T0 + 300);
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(decodeJwt(await issue()).jti).not.toBe(claims.jti);
  });

  it('keeps a given jti', async () => {
    const token = await issue(300, { ...baseClaims, jti: 'chosen' });

    expect(decodeJwt(token).jti).toBe('chosen');
  });

  it('signs identity tokens with their typ', async () => {
    const token = await signToken(store, {
      typ: IDENTITY_TOKEN_TYPE,
      claims: baseClaims,
      lifetimeSeconds: 60,
    });

    expect(decodeProtectedHeader(token).typ).toBe('deputy-id+jwt');
  });

  it('rejects a lifetime outside 1 to the maximum', async () => {
    for (const lifetime of [0, -5, 1.5, MAX_LIFETIME + 1]) {
      await expect(issue(lifetime)).rejects.toThrow(TypeError);
    }
  });

  it('rejects claims that set iat or exp', async () => {
    await expect(issue(60, { ...baseClaims, exp: T0 + 10 })).rejects.toThrow(TypeError);
    await expect(issue(60, { ...baseClaims, iat: T0 })).rejects.toThrow(TypeError);
  });
});

describe('verifyToken', () => {
  it('accepts a token expired within the tolerance', async () => {
    const token = await issue(300);

    await expect(verify(token, T0 + 304)).resolves.toMatchObject({ exp: T0 + 300 });
    await expectRejected(() => verify(token, T0 + 305), 'ERR_TOKEN_EXPIRED');
    await expectRejected(
      () => verify(token, T0 + 300, { clockToleranceSeconds: 0 }),
      'ERR_TOKEN_EXPIRED',
    );
  });

  it('accepts iat and nbf ahead within the tolerance', async () => {
    const token = await signRaw({ ...baseClaims, jti: 'j', iat: T0, nbf: T0, exp: T0 + 60 });

    await expect(verify(token, T0 - 5)).resolves.toMatchObject({ nbf: T0 });
    await expectRejected(() => verify(token, T0 - 6), 'ERR_TOKEN_NOT_YET_VALID');
  });

  it('accepts a lifetime of exactly the maximum', async () => {
    const token = await issue(MAX_LIFETIME);

    await expect(verify(token, T0)).resolves.toMatchObject({ exp: T0 + MAX_LIFETIME });
  });

  it('accepts an audience array of one', async () => {
    const token = await issue(60, { ...baseClaims, aud: [AUDIENCE] });

    await expect(verify(token, T0)).resolves.toMatchObject({ aud: [AUDIENCE] });
  });

  it('names the failed claim', async () => {
    const token = await issue(60, { ...baseClaims, aud: 'https://other.example.test' });
    const error = await expectRejected(() => verify(token, T0), 'ERR_TOKEN_AUDIENCE');

    expect(error.field).toBe('aud');
    expect(error.message).toBe(
      `invalid token: aud "https://other.example.test", expected exactly "${AUDIENCE}"`,
    );
  });

  it('rejects invalid options', async () => {
    const token = await issue();

    await expect(verify(token, T0, { issuer: '' })).rejects.toThrow(TypeError);
    await expect(verify(token, T0, { audience: '' })).rejects.toThrow(TypeError);
    await expect(verify(token, T0, { clockToleranceSeconds: -1 })).rejects.toThrow(TypeError);
  });

  it('throws a plain error when keys were never loaded', async () => {
    const token = await issue();
    const unloaded = new SigningKeyStore(database.db, randomBytes(32), {
      maxTokenLifetimeSeconds: MAX_LIFETIME,
    });

    const failure = verifyToken(unloaded, token, {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: ACCESS_TOKEN_TYPE,
    });
    await expect(failure).rejects.toThrow(/not loaded/);
    await expect(failure).rejects.not.toBeInstanceOf(TokenError);
  });
});
