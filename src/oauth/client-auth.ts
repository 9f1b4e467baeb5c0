import type { Kysely } from 'kysely';

import type { Tables } from '../storage/schema.js';
import { TokenError } from '../tokens/errors.js';
import { peekClaim } from '../tokens/peek.js';
import { verifyExternalToken } from '../tokens/verify.js';
import type { RuntimeClient, RuntimeClientStore } from './clients.js';
import { invalidClient, invalidRequest } from './errors.js';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Longest accepted client assertion lifetime, in seconds. */
const MAX_ASSERTION_LIFETIME_SECONDS = 300;

/** Seconds an assertion id is kept after its exp; far above the 5 seconds of tolerance. */
const ASSERTION_RETENTION_SECONDS = 300;

const ASSERTION_ALGORITHMS = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519'];

export interface ClientAuthContext {
  readonly clients: RuntimeClientStore;
  readonly db: Kysely<Tables>;
  /** Deputy's issuer identifier and token endpoint: either is a valid assertion audience. */
  readonly issuer: string;
  readonly tokenEndpoint: string;
}

/**
 * Authenticates the client of a token, introspection or revocation request by exactly one
 * method: HTTP Basic (RFC 6749, section 2.3.1), `client_secret` in the body, or a
 * `private_key_jwt` assertion (RFC 7523). The method must be the one the client registered.
 */
export async function authenticateClient(
  context: ClientAuthContext,
  form: URLSearchParams,
  authorization: string | undefined,
): Promise<RuntimeClient> {
  const basic = parseBasic(authorization);
  const assertion = form.get('client_assertion');
  const bodySecret = form.get('client_secret');
  const methods = [basic !== null, assertion !== null, bodySecret !== null].filter(Boolean);
  if (methods.length > 1) throw invalidRequest('use exactly one client authentication method');

  if (basic !== null) return checkSecret(context, basic.id, basic.secret, 'client_secret_basic');
  if (bodySecret !== null) {
    return checkSecret(context, form.get('client_id') ?? '', bodySecret, 'client_secret_post');
  }
  if (assertion !== null) {
    if (form.get('client_assertion_type') !== JWT_BEARER_ASSERTION) {
      throw invalidRequest(`client_assertion_type must be ${JWT_BEARER_ASSERTION}`);
    }
    return checkAssertion(context, assertion, form.get('client_id'));
  }
  throw invalidClient('client authentication is required');
}

function parseBasic(header: string | undefined): { id: string; secret: string } | null {
  const match = /^basic +([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return null;
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw invalidClient('malformed Basic credentials');
  // Both parts are form-urlencoded before base64 (RFC 6749, section 2.3.1).
  try {
    return {
      id: decodeURIComponent(decoded.slice(0, colon).replaceAll('+', ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replaceAll('+', ' ')),
    };
  } catch {
    throw invalidClient('malformed Basic credentials');
  }
}

function checkSecret(
  context: ClientAuthContext,
  clientId: string,
  secret: string,
  method: RuntimeClient['authMethod'],
): RuntimeClient {
  const client = context.clients.get(clientId);
  if (!client || client.authMethod !== method || !context.clients.verifySecret(clientId, secret)) {
    throw invalidClient('client authentication failed');
  }
  return client;
}

async function checkAssertion(
  context: ClientAuthContext,
  assertion: string,
  claimedId: string | null,
): Promise<RuntimeClient> {
  // The unverified iss only picks the client whose registered keys then verify the assertion.
  const unverifiedIssuer = peekClaim(assertion, 'iss') ?? null;
  const client = unverifiedIssuer === null ? null : context.clients.get(unverifiedIssuer);
  if (
    !client ||
    client.disabledAt !== null ||
    client.authMethod !== 'private_key_jwt' ||
    !client.jwks
  ) {
    throw invalidClient('client authentication failed');
  }
  if (claimedId !== null && claimedId !== client.clientId) {
    throw invalidClient('client_id does not match the client assertion');
  }

  const claims = await verifyAssertion(context, assertion, client);
  if (
    claims.sub !== client.clientId ||
    typeof claims.jti !== 'string' ||
    typeof claims.exp !== 'number'
  ) {
    throw invalidClient('the client assertion needs sub equal to the client id, jti and exp');
  }
  await rememberAssertion(context.db, claims.jti, claims.exp, client.clientId);
  return client;
}

async function verifyAssertion(
  context: ClientAuthContext,
  assertion: string,
  client: RuntimeClient,
) {
  const options = {
    issuer: client.clientId,
    jwks: client.jwks!,
    algorithms: ASSERTION_ALGORITHMS,
    maxTokenLifetimeSeconds: MAX_ASSERTION_LIFETIME_SECONDS,
  };
  try {
    return await verifyExternalToken(assertion, { ...options, audience: context.issuer });
  } catch (error) {
    // RFC 7523 names the token endpoint as the audience; newer guidance names the issuer.
    if (!(error instanceof TokenError) || error.code !== 'ERR_TOKEN_AUDIENCE') {
      throw invalidClient(`client assertion rejected: ${describe(error)}`);
    }
  }
  try {
    return await verifyExternalToken(assertion, { ...options, audience: context.tokenEndpoint });
  } catch (error) {
    throw invalidClient(`client assertion rejected: ${describe(error)}`);
  }
}

function describe(error: unknown): string {
  return error instanceof TokenError ? error.code : 'invalid';
}

/**
 * Stores an assertion's `jti` until it expires, so the same assertion is accepted once
 * (RFC 7523, section 3). The primary key makes this hold across processes.
 */
async function rememberAssertion(db: Kysely<Tables>, jti: string, exp: number, clientId: string) {
  // Ids are kept well past the verifier's clock tolerance, so an assertion that still verifies
  // after its exp is still found here.
  const now = Math.floor(Date.now() / 1000);
  await db
    .deleteFrom('client_assertions')
    .where('exp', '<', now - ASSERTION_RETENTION_SECONDS)
    .execute();
  try {
    await db
      .insertInto('client_assertions')
      .values({ jti: `${clientId}/${jti}`, exp })
      .execute();
  } catch {
    throw invalidClient('the client assertion was already used');
  }
}
