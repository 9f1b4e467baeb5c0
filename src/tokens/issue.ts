import { randomUUID, sign } from 'node:crypto';

import type { JWTPayload } from 'jose';

import type { SigningKeyStore } from './signing-keys.js';
import type { TokenType } from './types.js';

export interface SignTokenOptions {
  /** `typ` header: `deputy-id+jwt` for an identity token, `at+jwt` for an access token. */
  typ: TokenType;
  /**
   * Claims to sign. `iat` and `exp` are set from the clock and `lifetimeSeconds`, and a random
   * `jti` is added when none is given.
   */
  claims: Omit<JWTPayload, 'iat' | 'exp'>;
  /** Seconds from issue to expiry, at most the store's `maxTokenLifetimeSeconds`. */
  lifetimeSeconds: number;
  /** Issue time, replaced in tests. @default new Date() */
  now?: Date;
}

/**
 * Signs a JWT with the store's current key and returns it in compact serialization, with the
 * protected header `{ alg: 'ES256', kid, typ }`.
 *
 * Throws a TypeError when `lifetimeSeconds` is not a positive whole number or exceeds the
 * store's maximum, because a longer token would outlive the publication of its key.
 */
export async function signToken(
  store: SigningKeyStore,
  options: SignTokenOptions,
): Promise<string> {
  const { typ, claims, lifetimeSeconds } = options;
  const max = store.maxTokenLifetimeSeconds;
  if (!Number.isSafeInteger(lifetimeSeconds) || lifetimeSeconds <= 0 || lifetimeSeconds > max) {
    throw new TypeError(`lifetimeSeconds must be a whole number from 1 to ${max}`);
  }
  if ('iat' in claims || 'exp' in claims) {
    throw new TypeError('claims must not contain iat or exp: signToken sets them');
  }

  const key = await store.current();
  const issuedAt = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const header = { alg: key.alg, kid: key.kid, typ };
  const payload = { jti: randomUUID(), ...claims, iat: issuedAt, exp: issuedAt + lifetimeSeconds };

  // JWS compact serialization (RFC 7515, section 7.1) with an ES256 signature of R and S as
  // 32 bytes each (RFC 7518, section 3.4), made with node:crypto directly.
  const input = `${encode(header)}.${encode(payload)}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: key.privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${signature.toString('base64url')}`;
}

function encode(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
