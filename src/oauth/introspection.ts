import { resolveIdentity } from '../engine/decide.js';
import { TokenError } from '../tokens/errors.js';
import { peekJwt } from '../tokens/peek.js';
import type { TokenType } from '../tokens/types.js';
import { ACCESS_TOKEN_TYPE, IDENTITY_TOKEN_TYPE } from '../tokens/types.js';
import { type VerifiedDeputyPayload, verifyToken } from '../tokens/verify.js';
import { findRegisteredAudience } from './audiences.js';
import { authenticateClient } from './client-auth.js';
import type { RuntimeClient } from './clients.js';
import { type OAuthContext, single } from './context.js';
import { invalidClient, invalidRequest } from './errors.js';

/** The caller of introspection or revocation: a runtime client, or an API key. */
export type TokenCaller =
  { kind: 'client'; client: RuntimeClient } | { kind: 'key'; keyId: string; role: string };

/**
 * Authenticates an introspection or revocation caller: an API key with the `pep` or `admin`
 * role (a resource server), or a runtime client.
 */
export async function authenticateCaller(
  context: OAuthContext,
  form: URLSearchParams,
  authorization: string | undefined,
): Promise<TokenCaller> {
  const key = /^bearer +(dpy_\S+)\s*$/i.exec(authorization ?? '')?.[1];
  if (key !== undefined) {
    const caller = await context.deputy.keys.verify(key);
    if (caller === null || (caller.role !== 'pep' && caller.role !== 'admin')) {
      throw invalidClient('an API key with the pep or admin role is required');
    }
    return { kind: 'key', keyId: caller.id, role: caller.role };
  }
  return {
    kind: 'client',
    client: await authenticateClient(context.clientAuth, form, authorization),
  };
}

/**
 * Verifies a Deputy token of either type and checks that it is still active: not revoked,
 * its agent and identity still enabled, and its workspace still loaded. Returns `null` for
 * anything inactive, whatever the reason.
 */
export async function activeToken(
  context: OAuthContext,
  token: string,
): Promise<{ claims: VerifiedDeputyPayload; typ: TokenType } | null> {
  const typ = readTyp(token);
  if (typ !== IDENTITY_TOKEN_TYPE && typ !== ACCESS_TOKEN_TYPE) return null;
  const audience = typ === IDENTITY_TOKEN_TYPE ? context.settings.issuer : readAudience(token);
  if (audience === undefined) return null;

  let claims: VerifiedDeputyPayload;
  try {
    claims = await verifyToken(context.deputy.signingKeys, token, {
      issuer: context.settings.issuer,
      audience,
      typ,
    });
  } catch (error) {
    if (error instanceof TokenError) return null;
    throw error;
  }
  return isActive(context, claims, typ) ? { claims, typ } : null;
}

/**
 * Checks the state behind a verified token: not revoked, its client, agent and identity still
 * enabled, its workspace loaded and its audience registered.
 */
export function isActive(
  context: OAuthContext,
  claims: VerifiedDeputyPayload,
  typ: TokenType,
): boolean {
  const { deputy } = context;
  if (deputy.revocations.isInactive(claims)) return false;
  if (
    typeof claims.subject_jti === 'string' &&
    deputy.revocations.isTokenRevoked(claims.subject_jti)
  ) {
    return false;
  }

  // A token of a runtime client that has since been disabled or removed is inactive.
  const clientId = claims.client_id;
  if (typeof clientId !== 'string') return false;
  if (!clientId.startsWith('federation:')) {
    const client = deputy.clients.get(clientId);
    if (!client || client.disabledAt !== null) return false;
  }

  const workspace =
    typeof claims.workspace === 'string' ? deputy.engine.workspace(claims.workspace) : undefined;
  if (!workspace || typeof claims.agent !== 'string') return false;
  if (
    typ === ACCESS_TOKEN_TYPE &&
    (typeof claims.aud !== 'string' ||
      findRegisteredAudience(context, workspace.id, claims.aud)?.uri !== claims.aud)
  ) {
    return false;
  }
  const channel = typeof claims.channel === 'string' ? claims.channel : undefined;
  const invoker = typeof claims.invoker === 'string' ? claims.invoker : undefined;
  const resolution = resolveIdentity(workspace, claims.agent, channel, invoker);
  return resolution.reason === null && resolution.identity === claims.sub;
}

/**
 * Token introspection (RFC 7662). Anything inactive, unknown, malformed or outside the
 * caller's workspace gets exactly `{"active": false}`.
 */
export async function introspect(
  context: OAuthContext,
  form: URLSearchParams,
  authorization: string | undefined,
): Promise<{ result: Record<string, unknown>; caller: TokenCaller }> {
  const caller = await authenticateCaller(context, form, authorization);
  const token = single(form, 'token');
  if (token === undefined) throw invalidRequest('token is required');

  const active = await activeToken(context, token);
  if (active === null) return { result: { active: false }, caller };
  if (caller.kind === 'client' && caller.client.workspace !== active.claims.workspace) {
    return { result: { active: false }, caller };
  }

  const { claims, typ } = active;
  const result = {
    active: true,
    token_type: typ === ACCESS_TOKEN_TYPE ? 'Bearer' : 'identity',
    ...pick(claims, ['scope', 'client_id', 'sub', 'aud', 'iss', 'exp', 'iat', 'nbf', 'jti', 'act']),
    ...pick(claims, ['workspace', 'agent', 'channel', 'invoker', 'thread']),
  };
  return { result, caller };
}

/**
 * Token revocation (RFC 7009). Returns 200 for unknown and invalid tokens too. A runtime
 * client revokes only tokens issued to it; an API key with the admin role revokes any.
 */
export async function revoke(
  context: OAuthContext,
  form: URLSearchParams,
  authorization: string | undefined,
): Promise<{ revoked: boolean; claims: VerifiedDeputyPayload | null; caller: TokenCaller }> {
  const caller = await authenticateCaller(context, form, authorization);
  const token = single(form, 'token');
  if (token === undefined) throw invalidRequest('token is required');

  const active = await activeToken(context, token);
  if (active === null) return { revoked: false, claims: null, caller };
  const owns =
    caller.kind === 'key'
      ? caller.role === 'admin'
      : active.claims.client_id === caller.client.clientId;
  if (!owns) return { revoked: false, claims: active.claims, caller };

  await context.deputy.revocations.revokeToken(active.claims.jti, active.claims.exp);
  return { revoked: true, claims: active.claims, caller };
}

function pick(claims: Record<string, unknown>, names: string[]): Record<string, unknown> {
  return Object.fromEntries(
    names.filter((name) => claims[name] !== undefined).map((name) => [name, claims[name]]),
  );
}

function readTyp(token: string): unknown {
  return peekJwt(token, 'header')?.typ;
}

/** Reads the single `aud` of an access token before verification, to pick the expected value. */
function readAudience(token: string): string | undefined {
  const aud = peekJwt(token, 'payload')?.aud;
  if (typeof aud === 'string') return aud;
  return Array.isArray(aud) && aud.length === 1 && typeof aud[0] === 'string' ? aud[0] : undefined;
}
