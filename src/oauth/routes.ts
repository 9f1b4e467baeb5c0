import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

import type { Deputy } from '../deputy.js';
import { SIGNING_ALGORITHM } from '../tokens/signing-keys.js';
import {
  createOAuthContext,
  GRANT_TOKEN_EXCHANGE,
  type OAuthContext,
  type OAuthSettings,
  single,
} from './context.js';
import { OAuthError, invalidRequest } from './errors.js';
import { issueIdentityToken } from './identity-grant.js';
import { introspect, revoke, type TokenCaller } from './introspection.js';
import { exchangeToken } from './token-exchange.js';

export interface OAuthRouteOptions {
  deputy: Deputy;
  settings: OAuthSettings;
}

const CLIENT_AUTH_METHODS = ['private_key_jwt', 'client_secret_basic', 'client_secret_post'];

/** Deputy's OAuth 2.0 authorization server: metadata, keys, token, introspection, revocation. */
export const oauthRoutes: FastifyPluginAsync<OAuthRouteOptions> = async (app, options) => {
  const context = createOAuthContext(options.deputy, options.settings);
  const { issuer } = options.settings;
  const tags = ['OAuth'];

  app.get('/.well-known/oauth-authorization-server', { schema: { tags } }, async () =>
    metadata(issuer),
  );
  app.get('/oauth/jwks', { schema: { tags } }, async () => options.deputy.signingKeys.publicJwks());

  app.post('/oauth/token', { schema: { tags } }, async (request, reply) =>
    handle(reply, context, request, async () => {
      const form = formOf(request);
      const grantType = single(form, 'grant_type');
      if (grantType === undefined) throw invalidRequest('grant_type is required');
      if (grantType === 'client_credentials') {
        return await issueIdentityToken(context, form, request.headers.authorization, request.id);
      }
      if (grantType === GRANT_TOKEN_EXCHANGE) {
        return await exchangeToken(context, form, request.headers.authorization, request.id);
      }
      throw new OAuthError(
        'unsupported_grant_type',
        `use client_credentials or ${GRANT_TOKEN_EXCHANGE}`,
      );
    }),
  );

  app.post('/oauth/introspect', { schema: { tags } }, async (request, reply) =>
    handle(reply, null, request, async () => {
      const { result, caller } = await introspect(
        context,
        formOf(request),
        request.headers.authorization,
      );
      await recordUse(context, request, 'token.introspect', result, caller);
      return result;
    }),
  );

  app.post('/oauth/revoke', { schema: { tags } }, async (request, reply) =>
    handle(reply, null, request, async () => {
      const result = await revoke(context, formOf(request), request.headers.authorization);
      if (result.revoked && result.claims) {
        await recordUse(
          context,
          request,
          'token.revoke',
          { active: true, ...result.claims },
          result.caller,
        );
      }
      // RFC 7009, section 2.2: the response is 200 whether or not the token was valid.
      return reply.code(200).send();
    }),
  );
};

function metadata(issuer: string) {
  return {
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    jwks_uri: `${issuer}/oauth/jwks`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    grant_types_supported: ['client_credentials', GRANT_TOKEN_EXCHANGE],
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
    introspection_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS, 'bearer'],
    revocation_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS, 'bearer'],
    response_types_supported: [],
    id_token_signing_alg_values_supported: [SIGNING_ALGORITHM],
  };
}

function formOf(request: FastifyRequest): URLSearchParams {
  if (!(request.body instanceof URLSearchParams)) {
    throw invalidRequest('the body must be application/x-www-form-urlencoded');
  }
  return request.body;
}

/**
 * Sends an OAuthError as the RFC 6749 error response; anything else goes to the server's
 * handler. With a context, a refusal not yet in the audit log is recorded as `token.denied`.
 */
async function handle(
  reply: FastifyReply,
  context: OAuthContext | null,
  request: FastifyRequest,
  work: () => Promise<unknown>,
) {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    if (context !== null && !error.recorded) await recordRefusal(context, request, error);
    if (error.statusCode === 401) reply.header('www-authenticate', 'Basic realm="deputy"');
    return reply
      .code(error.statusCode)
      .send({ error: error.error, error_description: error.message });
  }
}

async function recordRefusal(context: OAuthContext, request: FastifyRequest, error: OAuthError) {
  const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
  await context.deputy.audit.append({
    type: 'token.denied',
    actor: { type: 'system', id: 'oauth' },
    decision: 'deny',
    reason: error.error,
    request_id: request.id,
    detail: { grant_type: form.get('grant_type'), error_description: error.message },
  });
}

async function recordUse(
  context: OAuthContext,
  request: FastifyRequest,
  type: string,
  result: Record<string, unknown>,
  caller: TokenCaller,
) {
  await context.deputy.audit.append({
    type,
    workspace: typeof result.workspace === 'string' ? result.workspace : null,
    actor:
      caller.kind === 'key'
        ? { type: 'api_key', id: caller.keyId }
        : { type: 'agent', id: caller.client.agent },
    identity: typeof result.sub === 'string' ? result.sub : null,
    invoker: typeof result.invoker === 'string' ? result.invoker : null,
    request_id: request.id,
    detail: {
      active: result.active === true,
      jti: typeof result.jti === 'string' ? result.jti : null,
      ...(caller.kind === 'client' ? { client_id: caller.client.clientId } : {}),
    },
  });
}
