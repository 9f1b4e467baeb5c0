import type { JWTPayload } from 'jose';

/** `typ` header of a Deputy identity token, which names the principal an agent acts as. */
export const IDENTITY_TOKEN_TYPE = 'deputy-id+jwt';

/** `typ` header of an OAuth 2.0 access token in the JWT profile of RFC 9068. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

export type TokenType = typeof IDENTITY_TOKEN_TYPE | typeof ACCESS_TOKEN_TYPE;

/** Claims of a token that passed verification: the registered claims it must carry are set. */
export interface VerifiedPayload extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
}
