/** Checks of a verified token's claims: issuer, audience, times and required claims. */
import type { JWTPayload } from 'jose';

import { quote, TokenError } from './errors.js';
import type { VerifiedPayload } from './types.js';

export interface ClaimRules {
  issuer: string;
  audience: string;
  /** Verification time, in seconds since the epoch. */
  now: number;
  clockToleranceSeconds: number;
  /** Maximum of `exp` − `iat`, in seconds. */
  maxTokenLifetimeSeconds: number;
  /** Whether `jti` is required. When it is optional, a present `jti` must still be a string. */
  requireJti: boolean;
}

/** Decodes a verified JWS payload, which must be a JSON object. */
export function parsePayload(payload: Uint8Array): JWTPayload {
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    claims = undefined;
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new TokenError('ERR_TOKEN_MALFORMED', 'invalid token: the payload is not a JSON object');
  }
  return claims as JWTPayload;
}

/** Checks the claims against `rules` and returns them typed, or throws a TokenError. */
export function checkClaims(claims: JWTPayload, rules: ClaimRules): VerifiedPayload {
  if (claims.iss !== rules.issuer) {
    const found = claims.iss === undefined ? 'iss is missing' : `iss ${quote(claims.iss)}`;
    throw new TokenError(
      'ERR_TOKEN_ISSUER',
      `invalid token: ${found}, expected "${rules.issuer}"`,
      { field: 'iss' },
    );
  }
  checkAudience(claims.aud, rules.audience);
  const { exp, iat } = checkTimes(claims, rules);

  const { sub, jti } = claims;
  if (typeof sub !== 'string' || sub === '') {
    throw claimError('sub', 'sub is missing or not a non-empty string');
  }
  if ((rules.requireJti || jti !== undefined) && (typeof jti !== 'string' || jti === '')) {
    throw claimError('jti', 'jti is missing or not a non-empty string');
  }
  return { ...claims, iss: rules.issuer, aud: claims.aud as string | string[], sub, exp, iat };
}

/**
 * Accepts `aud` equal to `audience`, or an array of exactly that one value. An array naming
 * other audiences too is rejected, so a token meant for several services cannot be replayed
 * from one of them to another.
 */
function checkAudience(aud: unknown, audience: string): void {
  const single = Array.isArray(aud) && aud.length === 1 ? aud[0] : aud;
  if (single !== audience) {
    let found = `aud ${quote(aud)}`;
    if (aud === undefined) found = 'aud is missing';
    if (Array.isArray(aud)) found = `aud has ${aud.length} values`;
    throw new TokenError(
      'ERR_TOKEN_AUDIENCE',
      `invalid token: ${found}, expected exactly "${audience}"`,
      { field: 'aud' },
    );
  }
}

/**
 * Requires `exp` and `iat`, rejects an expired token and one whose `nbf` or `iat` is in the
 * future (each beyond the clock tolerance), and bounds the lifetime `exp` − `iat`.
 */
function checkTimes(claims: JWTPayload, rules: ClaimRules): { exp: number; iat: number } {
  const { exp, iat, nbf } = claims;
  const tolerance = rules.clockToleranceSeconds;
  if (!isNumericDate(exp)) throw claimError('exp', 'exp is missing or not a number');
  if (!isNumericDate(iat)) throw claimError('iat', 'iat is missing or not a number');
  if (nbf !== undefined && !isNumericDate(nbf)) throw claimError('nbf', 'nbf is not a number');

  // RFC 7519 section 4.1.4: the token must not be accepted on or after its expiry time.
  if (exp <= rules.now - tolerance) {
    throw new TokenError('ERR_TOKEN_EXPIRED', 'invalid token: it has expired (exp)', {
      field: 'exp',
    });
  }
  for (const [name, value] of [['nbf', nbf] as const, ['iat', iat] as const]) {
    if (value !== undefined && value > rules.now + tolerance) {
      throw new TokenError(
        'ERR_TOKEN_NOT_YET_VALID',
        `invalid token: ${name} is in the future, so the token is not valid yet`,
        { field: name },
      );
    }
  }

  const lifetime = exp - iat;
  if (lifetime <= 0 || lifetime > rules.maxTokenLifetimeSeconds) {
    throw claimError(
      'exp',
      `the lifetime exp - iat is ${lifetime} seconds, expected more than 0 and at most ` +
        `${rules.maxTokenLifetimeSeconds}`,
    );
  }
  return { exp, iat };
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function claimError(field: string, detail: string): TokenError {
  return new TokenError('ERR_TOKEN_CLAIMS', `invalid token: ${detail}`, { field });
}
