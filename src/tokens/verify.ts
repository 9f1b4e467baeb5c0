/**
 * Verification of Deputy's own tokens and of tokens from federated issuers. Both pin the
 * algorithms, take keys only from a local set chosen by `kid`, and check claims exactly.
 */
import { type KeyObject, verify as cryptoVerify } from 'node:crypto';

import {
  compactVerify,
  createLocalJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
} from 'jose';

import { checkClaims, parsePayload } from './claims.js';
import { quote, TokenError } from './errors.js';
import { checkHeader, decodeCompactHeader } from './jws.js';
import { SIGNING_ALGORITHM, type SigningKeyStore } from './signing-keys.js';
import type { TokenType, VerifiedPayload } from './types.js';

/** Default clock tolerance for `exp`, `nbf` and `iat`, in seconds. */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;

/** Default maximum lifetime (`exp` − `iat`) of a federated token, in seconds. */
export const DEFAULT_EXTERNAL_MAX_LIFETIME_SECONDS = 3600;

/** Algorithms a federated issuer may use: asymmetric only, so no key doubles as a secret. */
const EXTERNAL_ALGORITHMS = new Set([
  ...['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512'],
  ...['PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519'],
]);

export interface VerifyTokenOptions {
  /** Expected `iss`, compared exactly. */
  issuer: string;
  /** Expected `aud`: the claim must be this string or an array of only this string. */
  audience: string;
  /**
   * Expected `typ` header, compared exactly.
   *
   * NOTE: `application/at+jwt`, the full media type that RFC 9068 registers, is rejected,
   * because Deputy issues only the short form `at+jwt`.
   */
  typ: TokenType;
  /** Tolerance for `exp`, `nbf` and `iat`, in seconds. @default 5 */
  clockToleranceSeconds?: number;
  /** Verification time, replaced in tests. @default new Date() */
  now?: Date;
}

/** A verified Deputy token's claims: `jti` and `sub` are always present. */
export interface VerifiedDeputyPayload extends VerifiedPayload {
  jti: string;
}

/**
 * Verifies a Deputy identity or access token signed with a key published by `store`, and
 * returns its claims. It never fetches anything: an unknown `kid` is rejected.
 *
 * Throws a TokenError whose `code` names the failed check. The message never contains the
 * token. Revocation is not checked here, see `RevocationStore.isInactive`.
 */
export async function verifyToken(
  store: SigningKeyStore,
  token: string,
  options: VerifyTokenOptions,
): Promise<VerifiedDeputyPayload> {
  const tolerance = checkOptions(options);
  const header = checkHeader(decodeCompactHeader(token), {
    algorithms: [SIGNING_ALGORITHM],
    typ: options.typ,
  });

  const now = options.now ?? new Date();
  const key = store.verificationKey(header.kid, now);
  if (key === null) {
    throw new TokenError(
      'ERR_TOKEN_KID',
      `invalid token: kid ${quote(header.kid)} is not a published Deputy signing key`,
      { field: 'kid' },
    );
  }

  const claims = verifyEs256(token, key);
  const payload = checkClaims(claims, {
    issuer: options.issuer,
    audience: options.audience,
    now: now.getTime() / 1000,
    clockToleranceSeconds: tolerance,
    maxTokenLifetimeSeconds: store.maxTokenLifetimeSeconds,
    requireJti: true,
  });
  return payload as VerifiedDeputyPayload;
}

export interface VerifyExternalTokenOptions {
  /** Expected `iss`, compared exactly. */
  issuer: string;
  /** The issuer's public keys, held locally (for example from `fetchJwks`). */
  jwks: JSONWebKeySet;
  /** Expected `aud`: the claim must be this string or an array of only this string. */
  audience: string;
  /** Accepted `alg` values, asymmetric only (ES*, RS*, PS*, EdDSA, Ed25519). */
  algorithms: readonly string[];
  /** Expected `typ` header, compared exactly. When absent, `typ` is not checked. */
  typ?: string;
  /** Tolerance for `exp`, `nbf` and `iat`, in seconds. @default 5 */
  clockToleranceSeconds?: number;
  /** Maximum of `exp` − `iat`, in seconds. @default 3600 */
  maxTokenLifetimeSeconds?: number;
  /** Verification time, replaced in tests. @default new Date() */
  now?: Date;
}

const keySets = new WeakMap<JSONWebKeySet, ReturnType<typeof createLocalJWKSet>>();

/**
 * Verifies a token from a federated issuer against the caller's local JWK set, with the same
 * header and claim checks as {@link verifyToken}. A `jti` is optional here, because many
 * identity providers omit it. The key set is snapshotted on first use of each `jwks` object.
 *
 * Throws a TypeError for invalid options, and a TokenError for a rejected token.
 */
export async function verifyExternalToken(
  token: string,
  options: VerifyExternalTokenOptions,
): Promise<VerifiedPayload> {
  const tolerance = checkOptions(options);
  checkExternalOptions(options);
  checkHeader(decodeCompactHeader(token), { algorithms: options.algorithms, typ: options.typ });

  let keySet = keySets.get(options.jwks);
  if (keySet === undefined) {
    keySet = createLocalJWKSet(options.jwks);
    keySets.set(options.jwks, keySet);
  }

  const claims = await verifySignature(token, keySet, options.algorithms);
  return checkClaims(claims, {
    issuer: options.issuer,
    audience: options.audience,
    now: (options.now ?? new Date()).getTime() / 1000,
    clockToleranceSeconds: tolerance,
    maxTokenLifetimeSeconds:
      options.maxTokenLifetimeSeconds ?? DEFAULT_EXTERNAL_MAX_LIFETIME_SECONDS,
    requireJti: false,
  });
}

/** Verifies the signature with jose and maps its errors to TokenError codes. */
/**
 * Verifies the ES256 signature of a compact JWS whose form `decodeCompactHeader` has checked,
 * with node:crypto directly (RFC 7518, section 3.4: R and S as 32 bytes each), and returns the
 * payload. Deputy's own tokens take this path; it is several times faster than jose's.
 */
function verifyEs256(token: string, key: KeyObject): JWTPayload {
  const firstDot = token.indexOf('.');
  const lastDot = token.lastIndexOf('.');
  const signature = Buffer.from(token.slice(lastDot + 1), 'base64url');
  const signed = Buffer.from(token.slice(0, lastDot));
  const valid =
    signature.length === 64 &&
    cryptoVerify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, signature);
  if (!valid) {
    throw new TokenError('ERR_TOKEN_SIGNATURE', 'invalid token: signature verification failed');
  }
  return parsePayload(Buffer.from(token.slice(firstDot + 1, lastDot), 'base64url'));
}

async function verifySignature(
  token: string,
  key: Parameters<typeof compactVerify>[1],
  algorithms: readonly string[],
): Promise<JWTPayload> {
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(token, key, { algorithms: [...algorithms] }));
  } catch (error) {
    throw toTokenError(error);
  }
  return parsePayload(payload);
}

function toTokenError(error: unknown): unknown {
  if (!(error instanceof errors.JOSEError)) return error;
  switch (error.code) {
    case errors.JWSSignatureVerificationFailed.code:
      return new TokenError('ERR_TOKEN_SIGNATURE', 'invalid token: signature verification failed');
    case errors.JWKSNoMatchingKey.code:
    case errors.JWKSMultipleMatchingKeys.code:
      return new TokenError(
        'ERR_TOKEN_KID',
        'invalid token: kid does not select exactly one key of the issuer for this alg',
        { field: 'kid' },
      );
    case errors.JOSEAlgNotAllowed.code:
    case errors.JOSENotSupported.code:
      return new TokenError('ERR_TOKEN_ALG', 'invalid token: alg is not accepted', {
        field: 'alg',
      });
    default:
      return new TokenError('ERR_TOKEN_MALFORMED', 'invalid token: the JWS is malformed');
  }
}

/** Validates the options both verifiers share, and returns the clock tolerance. */
function checkOptions(options: {
  issuer: string;
  audience: string;
  clockToleranceSeconds?: number;
}): number {
  if (typeof options.issuer !== 'string' || options.issuer === '') {
    throw new TypeError('issuer must be a non-empty string');
  }
  if (typeof options.audience !== 'string' || options.audience === '') {
    throw new TypeError('audience must be a non-empty string');
  }
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new TypeError('clockToleranceSeconds must be a number of seconds, 0 or more');
  }
  return tolerance;
}

function checkExternalOptions(options: VerifyExternalTokenOptions): void {
  const { algorithms, jwks, maxTokenLifetimeSeconds } = options;
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new TypeError('algorithms must list at least one accepted alg');
  }
  const rejected = algorithms.filter((alg) => !EXTERNAL_ALGORITHMS.has(alg));
  if (rejected.length > 0) {
    throw new TypeError(
      `algorithms contains ${rejected.join(', ')}: use asymmetric algorithms only ` +
        `(${[...EXTERNAL_ALGORITHMS].join(', ')})`,
    );
  }
  if (maxTokenLifetimeSeconds !== undefined && !(maxTokenLifetimeSeconds > 0)) {
    throw new TypeError('maxTokenLifetimeSeconds must be a positive number of seconds');
  }
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray(jwks.keys)) {
    throw new TypeError('jwks must be a JWK set: an object with a keys array');
  }
  for (const jwk of jwks.keys) {
    if (jwk.kty === 'oct' || 'd' in jwk) {
      throw new TypeError(`jwks key ${quote(jwk.kid)} is not a public key: remove it from the set`);
    }
  }
}
