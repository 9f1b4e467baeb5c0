/**
 * An OAuth 2.0 error response (RFC 6749, section 5.2): `error` is one of the registered codes,
 * `error_description` describes what was wrong and never contains a token or secret.
 */
export class OAuthError extends Error {
  readonly error: string;
  readonly statusCode: number;
  /** Whether the refusal is already in the audit log, so the endpoint does not record it twice. */
  recorded = false;

  constructor(error: string, description: string, statusCode = 400) {
    super(description);
    this.name = 'OAuthError';
    this.error = error;
    this.statusCode = statusCode;
  }
}

export const invalidRequest = (description: string) =>
  new OAuthError('invalid_request', description);

export const invalidClient = (description: string) =>
  new OAuthError('invalid_client', description, 401);

export const invalidGrant = (description: string) => new OAuthError('invalid_grant', description);
