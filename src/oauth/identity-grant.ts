import { resolveIdentity, scopeName } from '../engine/decide.js';
import { peekClaim } from '../tokens/peek.js';
import { signToken } from '../tokens/issue.js';
import { IDENTITY_TOKEN_TYPE } from '../tokens/types.js';
import { authenticateClient } from './client-auth.js';
import { type OAuthContext, single } from './context.js';
import { OAuthError, invalidRequest } from './errors.js';

/** A thread or task id: 1 to 200 printable ASCII characters. */
export const THREAD = /^[\x21-\x7e]{1,200}$/;

/** The token endpoint's response for an identity token. */
export interface IdentityTokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

/**
 * Issues an identity token (grant type `client_credentials`) for the client's agent in one
 * scope. Parameters: `channel` (a channel id or `dm:<member>`; the workspace scope when
 * omitted), `invoker` (the member who asked) and `thread` (a thread or task id). The same
 * checks as a decision run first, so a disabled agent or identity, an unknown or excluded
 * scope, or an invoker who may not ask there gets no token.
 */
export async function issueIdentityToken(
  context: OAuthContext,
  form: URLSearchParams,
  authorization: string | undefined,
  requestId: string,
): Promise<IdentityTokenResponse> {
  const client = await authenticateClient(context.clientAuth, form, authorization);
  const channel = single(form, 'channel');
  const invoker = single(form, 'invoker');
  const thread = single(form, 'thread');
  if (thread !== undefined && !THREAD.test(thread)) {
    throw invalidRequest('thread must be 1 to 200 printable ASCII characters');
  }

  const { deputy } = context;
  const workspace = deputy.engine.workspace(client.workspace);
  const resolution = workspace
    ? resolveIdentity(workspace, client.agent, channel, invoker)
    : { reason: 'agent_unknown' as const, identity: null };
  const scope = scopeName(channel);
  const record = {
    workspace: client.workspace,
    actor: { type: 'agent' as const, id: client.agent },
    identity: resolution.identity,
    invoker: invoker ?? null,
    scope,
    request_id: requestId,
  };

  if (resolution.reason !== null) {
    await deputy.audit.append({
      ...record,
      type: 'token.denied',
      decision: 'deny',
      reason: resolution.reason,
      detail: { client_id: client.clientId, token_type: 'identity' },
    });
    const refusal = new OAuthError('invalid_grant', `no identity token: ${resolution.reason}`);
    refusal.recorded = true;
    throw refusal;
  }

  const lifetime = context.settings.identityTokenLifetimeSeconds;
  const token = await signToken(deputy.signingKeys, {
    typ: IDENTITY_TOKEN_TYPE,
    lifetimeSeconds: lifetime,
    claims: {
      iss: context.settings.issuer,
      aud: context.settings.issuer,
      sub: resolution.identity as string,
      client_id: client.clientId,
      workspace: client.workspace,
      agent: client.agent,
      ...(channel === undefined ? {} : { channel }),
      ...(invoker === undefined ? {} : { invoker }),
      ...(thread === undefined ? {} : { thread }),
    },
  });

  await deputy.audit.append({
    ...record,
    type: 'token.issue',
    decision: 'allow',
    reason: 'granted',
    detail: {
      client_id: client.clientId,
      token_type: 'identity',
      jti: readJti(token),
      expires_in: lifetime,
    },
  });
  return { access_token: token, token_type: 'Bearer', expires_in: lifetime };
}

/** Reads the `jti` of a token Deputy just signed, for the audit record. */
export function readJti(token: string): string | null {
  return peekClaim(token, 'jti') ?? null;
}
