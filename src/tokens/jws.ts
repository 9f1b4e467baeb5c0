/** Checks of a compact JWS made before any key is looked up or any signature is verified. */
import { decodeProtectedHeader, type ProtectedHeaderParameters } from 'jose';

import { quote, TokenError } from './errors.js';

/** Maximum length of a token, in characters (8 KiB, since compact tokens are ASCII). */
export const MAX_TOKEN_LENGTH = 8192;

/**
 * Header parameters that let a token name its own key (`jku`, `jwk`, `x5u`, `x5c`, RFC 7515
 * section 4.1) or demand extensions (`crit`). Keys come only from a local set, chosen by `kid`.
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'] as const;

const HEADER_OR_PAYLOAD = /^[A-Za-z0-9_-]+$/;
const SIGNATURE = /^[A-Za-z0-9_-]*$/;

/** A protected header that passed {@link checkHeader}. */
export interface CheckedHeader extends ProtectedHeaderParameters {
  alg: string;
  kid: string;
}

/**
 * Decodes the protected header of a compact JWS. Throws ERR_TOKEN_MALFORMED for a value that
 * is not a string, is longer than {@link MAX_TOKEN_LENGTH}, is not three base64url segments
 * (the JSON serialization is rejected), or whose header is not a JSON object.
 */
export function decodeCompactHeader(token: unknown): ProtectedHeaderParameters {
  if (typeof token !== 'string') {
    throw new TokenError('ERR_TOKEN_MALFORMED', 'invalid token: expected a string');
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new TokenError(
      'ERR_TOKEN_MALFORMED',
      `invalid token: it is ${token.length} characters long, above the maximum of ${MAX_TOKEN_LENGTH}`,
    );
  }

  const [header = '', payload = '', signature = '', ...rest] = token.split('.');
  const wellFormed =
    rest.length === 0 &&
    HEADER_OR_PAYLOAD.test(header) &&
    HEADER_OR_PAYLOAD.test(payload) &&
    SIGNATURE.test(signature);
  if (!wellFormed) {
    throw new TokenError(
      'ERR_TOKEN_MALFORMED',
      'invalid token: expected the JWS compact serialization, three base64url segments ' +
        'separated by dots',
    );
  }

  try {
    return decodeProtectedHeader(token);
  } catch {
    throw new TokenError(
      'ERR_TOKEN_MALFORMED',
      'invalid token: the protected header is not a base64url-encoded JSON object',
    );
  }
}

/**
 * Checks `alg` against `algorithms`, rejects the forbidden header parameters, compares `typ`
 * exactly when `typ` is given, and requires a non-empty string `kid`.
 */
export function checkHeader(
  header: ProtectedHeaderParameters,
  expected: { algorithms: readonly string[]; typ: string | undefined },
): CheckedHeader {
  const { alg, typ, kid } = header;
  if (typeof alg !== 'string' || !expected.algorithms.includes(alg)) {
    throw new TokenError(
      'ERR_TOKEN_ALG',
      `invalid token: alg ${quote(alg)} is not accepted, expected ${expected.algorithms.join(', ')}`,
      { field: 'alg' },
    );
  }

  for (const name of FORBIDDEN_HEADER_PARAMETERS) {
    if (Object.hasOwn(header, name)) {
      throw new TokenError(
        'ERR_TOKEN_HEADER',
        `invalid token: header parameter ${name} is not accepted, because keys come only ` +
          'from the local key set',
        { field: name },
      );
    }
  }

  if (expected.typ !== undefined && typ !== expected.typ) {
    throw new TokenError(
      'ERR_TOKEN_TYP',
      `invalid token: typ ${quote(typ)} does not match the expected "${expected.typ}"`,
      { field: 'typ' },
    );
  }

  if (typeof kid !== 'string' || kid === '') {
    throw new TokenError('ERR_TOKEN_KID', 'invalid token: kid is missing or not a string', {
      field: 'kid',
    });
  }
  return { ...header, alg, kid };
}
