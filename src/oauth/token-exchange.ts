import { resolveIdentity, scopeName } from '../engine/decide.js';
import { peekClaim } from '../tokens/peek.js';
import { allowedScopes } from '../engine/scopes.js';
import type { Audience, Federation } from '../model/policy.js';
import { TokenError } from '../tokens/errors.js';
import { signToken } from '../tokens/issue.js';
import { ACCESS_TOKEN_TYPE, IDENTITY_TOKEN_TYPE } from '../tokens/types.js';
import { verifyToken } from '../tokens/verify.js';
import { findRegisteredAudience, GATEWAY_AUDIENCE_ID } from './audiences.js';
import { authenticateClient } from './client-auth.js';
import type { RuntimeClient } from './clients.js';
import { type OAuthContext, single, TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT } from './context.js';
import { OAuthError, invalidGrant, invalidRequest } from './errors.js';
import { claimOf, verifyFederatedToken } from './federation.js';
import { readJti, THREAD } from './identity-grant.js';

/** The identity a subject token names, once verified and checked against the current policy. */
interface Subject {
  workspace: string;
  agent: string;
  identity: string;
  channel: string | undefined;
  invoker: string | undefined;
  thread: string | undefined;
  clientId: string;
  /** Expiry of the subject token, in seconds since the epoch. */
  exp: number;
  /** The subject token's `jti` when Deputy issued it: revoking it revokes what it was exchanged for. */
  subjectJti: string | null;
}

export interface TokenExchangeResponse {
  access_token: string;
  issued_token_type: typeof TOKEN_TYPE_ACCESS;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/**
 * Exchanges an identity token (Deputy's, or a trusted issuer's) for an access token for one
 * registered audience (RFC 8693). The scope is the intersection of what was requested and
 * what the identity's grants allow for that audience. The token never outlives the subject
 * token and never leaves the subject's workspace.
 */
export async function exchangeToken(
  context: OAuthContext,
  form: URLSearchParams,
  authorization: string | undefined,
  requestId: string,
): Promise<TokenExchangeResponse> {
  const subjectToken = single(form, 'subject_token');
  if (subjectToken === undefined) throw invalidRequest('subject_token is required');
  if (single(form, 'subject_token_type') !== TOKEN_TYPE_JWT) {
    throw invalidRequest(`subject_token_type must be ${TOKEN_TYPE_JWT}`);
  }
  const requestedType = single(form, 'requested_token_type');
  if (requestedType !== undefined && requestedType !== TOKEN_TYPE_ACCESS) {
    throw invalidRequest(`requested_token_type must be ${TOKEN_TYPE_ACCESS}`);
  }
  if (form.has('actor_token')) throw invalidRequest('actor_token is not supported');

  const subject = await verifySubject(context, subjectToken, form, authorization);
  const audience = findAudience(context, subject.workspace, form);
  const requested = parseScope(single(form, 'scope'), audience);
  return await issueAccessToken(context, subject, audience, requested, requestId);
}

async function verifySubject(
  context: OAuthContext,
  token: string,
  form: URLSearchParams,
  authorization: string | undefined,
): Promise<Subject> {
  const issuer = peekClaim(token, 'iss');
  if (issuer === context.settings.issuer) {
    const client = await authenticateClient(context.clientAuth, form, authorization);
    return await verifyDeputySubject(context, token, client);
  }
  const hasClientAuth = form.has('client_assertion') || form.has('client_secret') || authorization;
  const client = hasClientAuth
    ? await authenticateClient(context.clientAuth, form, authorization)
    : null;
  return await verifyFederatedSubject(context, token, issuer, client);
}

async function verifyDeputySubject(
  context: OAuthContext,
  token: string,
  client: RuntimeClient,
): Promise<Subject> {
  const { deputy, settings } = context;
  let claims;
  try {
    claims = await verifyToken(deputy.signingKeys, token, {
      issuer: settings.issuer,
      audience: settings.issuer,
      typ: IDENTITY_TOKEN_TYPE,
    });
  } catch (error) {
    throw invalidGrant(
      `subject_token rejected: ${error instanceof TokenError ? error.code : 'invalid'}`,
    );
  }
  if (claims.client_id !== client.clientId || claims.workspace !== client.workspace) {
    throw invalidGrant('subject_token was issued to another client');
  }
  if (deputy.revocations.isInactive(claims)) throw invalidGrant('subject_token is revoked');

  const subject = {
    workspace: client.workspace,
    agent: String(claims.agent),
    identity: claims.sub,
    channel: optional(claims.channel),
    invoker: optional(claims.invoker),
    thread: optional(claims.thread),
    clientId: client.clientId,
    exp: claims.exp,
    subjectJti: claims.jti,
  };
  checkStillAllowed(context, subject);
  return subject;
}

async function verifyFederatedSubject(
  context: OAuthContext,
  token: string,
  issuerId: string | undefined,
  client: RuntimeClient | null,
): Promise<Subject> {
  const { workspace, trusted } = findTrustedIssuer(context, issuerId, client);
  let claims;
  try {
    claims = await verifyFederatedToken(token, trusted, context.settings.issuer);
  } catch (error) {
    throw invalidGrant(
      `subject_token rejected: ${error instanceof TokenError ? error.code : 'invalid'}`,
    );
  }

  const agent = claimOf(claims, trusted.claims.agent);
  if (agent === undefined) throw invalidGrant(`subject_token has no ${trusted.claims.agent} claim`);
  if (trusted.agents !== undefined && !trusted.agents.includes(agent)) {
    throw invalidGrant(`issuer ${trusted.id} may not speak for agent ${agent}`);
  }
  if (client !== null && client.agent !== agent)
    throw invalidGrant('subject_token names another agent');
  if (typeof claims.exp !== 'number') throw invalidGrant('subject_token has no exp');
  const thread = claimOf(claims, trusted.claims.thread);
  if (thread !== undefined && !THREAD.test(thread)) {
    throw invalidGrant(
      `the ${trusted.claims.thread} claim must be 1 to 200 printable ASCII characters`,
    );
  }

  const subject = {
    workspace,
    agent,
    identity: '',
    channel: claimOf(claims, trusted.claims.channel),
    invoker: claimOf(claims, trusted.claims.invoker),
    thread,
    clientId: client?.clientId ?? `federation:${trusted.id}`,
    exp: claims.exp,
    subjectJti: null,
  };
  subject.identity = checkStillAllowed(context, subject);

  const revocationClaims = {
    jti: `federation:${trusted.id}`,
    iat: claims.iat,
    sub: subject.identity,
    workspace,
    agent,
  };
  if (context.deputy.revocations.isInactive(revocationClaims))
    throw invalidGrant('subject_token is revoked');
  return subject;
}

function findTrustedIssuer(
  context: OAuthContext,
  issuer: string | undefined,
  client: RuntimeClient | null,
): { workspace: string; trusted: Federation } {
  const candidates: { workspace: string; trusted: Federation }[] = [];
  for (const id of context.deputy.engine.workspaceIds()) {
    if (client !== null && client.workspace !== id) continue;
    const policy = context.deputy.engine.workspace(id)?.policy;
    const trusted = policy?.federation.find((entry) => entry.issuer === issuer);
    if (trusted) candidates.push({ workspace: id, trusted });
  }
  // An issuer trusted by several workspaces must be disambiguated by client authentication.
  if (candidates.length !== 1) throw invalidGrant('subject_token issuer is not trusted');
  return candidates[0]!;
}

/**
 * Re-runs the identity checks against the current policy, so an agent or identity disabled
 * since the subject token was issued, or a scope that no longer admits it, stops here.
 */
function checkStillAllowed(
  context: OAuthContext,
  subject: Omit<Subject, 'identity'> & { identity: string },
): string {
  const workspace = context.deputy.engine.workspace(subject.workspace);
  if (!workspace) throw invalidGrant('the workspace is not loaded');
  const resolution = resolveIdentity(workspace, subject.agent, subject.channel, subject.invoker);
  if (resolution.reason !== null)
    throw invalidGrant(`the identity may not act: ${resolution.reason}`);
  if (subject.identity !== '' && resolution.identity !== subject.identity) {
    throw invalidGrant('the identity of the subject_token no longer matches its scope');
  }
  return resolution.identity as string;
}

function findAudience(context: OAuthContext, workspace: string, form: URLSearchParams): Audience {
  const resources = form.getAll('resource');
  const audiences = form.getAll('audience');
  const targets = [...resources, ...audiences];
  if (targets.length !== 1) throw invalidRequest('name exactly one resource or audience');

  const audience = findRegisteredAudience(context, workspace, targets[0]!);
  if (!audience)
    throw new OAuthError(
      'invalid_target',
      'the resource or audience is not registered in this workspace',
    );
  return audience;
}

function parseScope(scope: string | undefined, audience: Audience): string[] {
  if (scope === undefined) return audience.scopes;
  const values = scope.split(' ').filter((value) => value !== '');
  if (values.length === 0) throw new OAuthError('invalid_scope', 'scope is empty');
  return [...new Set(values)].filter((value) => audience.scopes.includes(value));
}

async function issueAccessToken(
  context: OAuthContext,
  subject: Subject,
  audience: Audience,
  requested: string[],
  requestId: string,
): Promise<TokenExchangeResponse> {
  const { deputy, settings } = context;
  const workspace = deputy.engine.workspace(subject.workspace)!;
  const resolution = resolveIdentity(workspace, subject.agent, subject.channel, subject.invoker);
  // Gateway scopes only open the gateway's endpoints, where every call is decided on its own.
  const allowed =
    audience.id === GATEWAY_AUDIENCE_ID
      ? { scopes: requested, until: Infinity }
      : allowedScopes(
          workspace,
          resolution,
          subject.agent,
          subject.invoker,
          audience.connection,
          requested,
        );
  const record = {
    workspace: subject.workspace,
    actor: { type: 'agent' as const, id: subject.agent },
    identity: subject.identity,
    invoker: subject.invoker ?? null,
    scope: scopeName(subject.channel),
    resource: audience.uri,
    request_id: requestId,
  };
  const granted = allowed.scopes;
  if (granted.length === 0) {
    await deputy.audit.append({
      ...record,
      type: 'token.denied',
      decision: 'deny',
      reason: 'no_matching_grant',
      detail: { client_id: subject.clientId, token_type: 'access', requested },
    });
    const refusal = new OAuthError(
      'invalid_scope',
      'none of the requested scopes is allowed for this identity',
    );
    refusal.recorded = true;
    throw refusal;
  }

  const now = Math.floor(Date.now() / 1000);
  // The token ends no later than the subject token, nor than a time-boxed grant behind it.
  const grantEnd = Math.floor(allowed.until / 1000);
  const lifetime = Math.min(audience.token_lifetime, subject.exp - now, grantEnd - now);
  if (lifetime <= 0) throw invalidGrant('subject_token has expired');

  const token = await signToken(deputy.signingKeys, {
    typ: ACCESS_TOKEN_TYPE,
    lifetimeSeconds: lifetime,
    claims: {
      iss: settings.issuer,
      aud: audience.uri,
      sub: subject.identity,
      client_id: subject.clientId,
      scope: granted.join(' '),
      act: { sub: `agent:${subject.agent}` },
      workspace: subject.workspace,
      agent: subject.agent,
      ...(subject.channel === undefined ? {} : { channel: subject.channel }),
      ...(subject.invoker === undefined ? {} : { invoker: subject.invoker }),
      ...(subject.thread === undefined ? {} : { thread: subject.thread }),
      ...(subject.subjectJti === null ? {} : { subject_jti: subject.subjectJti }),
    },
  });

  await deputy.audit.append({
    ...record,
    type: 'token.exchange',
    decision: 'allow',
    reason: 'granted',
    detail: {
      client_id: subject.clientId,
      token_type: 'access',
      jti: readJti(token),
      scope: granted.join(' '),
      expires_in: lifetime,
    },
  });
  return {
    access_token: token,
    issued_token_type: TOKEN_TYPE_ACCESS,
    token_type: 'Bearer',
    expires_in: lifetime,
    scope: granted.join(' '),
  };
}

function optional(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
