/** Stable codes of {@link TokenError}. */
export type TokenErrorCode =
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_ALG'
  | 'ERR_TOKEN_HEADER'
  | 'ERR_TOKEN_TYP'
  | 'ERR_TOKEN_KID'
  | 'ERR_TOKEN_SIGNATURE'
  | 'ERR_TOKEN_ISSUER'
  | 'ERR_TOKEN_AUDIENCE'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  | 'ERR_TOKEN_CLAIMS'
  | 'ERR_JWKS_FETCH'
  | 'ERR_JWKS_INVALID';

/**
 * A token that failed verification, or a JWK set that could not be fetched. Messages name the
 * header parameter or claim that failed and never contain the token or key material.
 */
export class TokenError extends Error {
  readonly code: TokenErrorCode;
  /** The claim or header parameter that failed, when one did. */
  readonly field: string | undefined;

  constructor(code: TokenErrorCode, message: string, options?: ErrorOptions & { field?: string }) {
    super(message, options);
    this.name = 'TokenError';
    this.code = code;
    this.field = options?.field;
  }
}

/** Quotes an untrusted value for an error message, cut to 64 characters. */
export function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : String(JSON.stringify(value));
  const cut = text.length > 64 ? `${text.slice(0, 64)}…` : text;
  return JSON.stringify(cut);
}
