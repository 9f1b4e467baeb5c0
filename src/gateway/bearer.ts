/**
 * Bearer token authentication of the gateway as an OAuth protected resource (RFC 6750 and
 * RFC 9728): the token must be an active Deputy access token whose audience is the gateway.
 */
import { AuditRateLimit } from '../audit/rate-limit.js';
import type { Deputy } from '../deputy.js';
import { scopeName } from '../engine/decide.js';
import type { OAuthContext } from '../oauth/context.js';
import { activeToken, isActive } from '../oauth/introspection.js';
import type { VerifiedDeputyPayload } from '../tokens/verify.js';
import { ACCESS_TOKEN_TYPE } from '../tokens/types.js';

/** The agent behind a gateway request, as its access token states it. */
export interface GatewayCaller {
  readonly workspace: string;
  readonly agent: string;
  /** Channel id or `dm:<member>`; undefined for the workspace scope. */
  readonly channel: string | undefined;
  readonly invoker: string | undefined;
  readonly thread: string | undefined;
  /** The identity the token was issued to (`sub`). */
  readonly identity: string;
  /** `workspace`, `channel:<id>` or `dm:<member>`. */
  readonly scope: string;
  readonly scopes: ReadonlySet<string>;
  readonly clientId: string;
  readonly jti: string;
  /** Expiry of the token, in seconds since the epoch. */
  readonly expiresAt: number;
  /** Checks again that the token is active: not expired, revoked or disabled since. */
  readonly isActive: () => boolean;
}

/** A failed authentication: the status, the RFC 6750 error code and the challenge to send. */
export class BearerError extends Error {
  /** 400, 401, 403, or 407 when a forward proxy requires Proxy-Authorization. */
  readonly status: 400 | 401 | 403 | 407;
  /** `invalid_token`, `insufficient_scope`, or null when no credentials were sent. */
  readonly error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | null;
  readonly scope: string | undefined;

  constructor(
    status: 400 | 401 | 403 | 407,
    error: BearerError['error'],
    message: string,
    scope?: string,
  ) {
    super(message);
    this.name = 'BearerError';
    this.status = status;
    this.error = error;
    this.scope = scope;
  }

  /** Returns the `WWW-Authenticate` value (RFC 6750, section 3), pointing at the resource metadata. */
  challenge(resourceMetadataUrl: string): string {
    const parts = [`resource_metadata="${resourceMetadataUrl}"`];
    if (this.error !== null) {
      parts.push(`error="${this.error}"`, `error_description="${this.message}"`);
    }
    if (this.scope !== undefined) parts.push(`scope="${this.scope}"`);
    return `Bearer ${parts.join(', ')}`;
  }
}

/**
 * Authenticates the `Authorization` header of a gateway request and requires `scope`.
 * Throws a BearerError: 400 for a malformed header, 401 for a missing, invalid, expired,
 * revoked or foreign token, 403 for a valid token without the scope. Messages never contain the token.
 */
export async function authenticateBearer(
  context: OAuthContext,
  resource: string,
  authorization: string | undefined,
  scope: string,
): Promise<GatewayCaller> {
  if (authorization === undefined || authorization === '') {
    throw new BearerError(401, null, 'an access token is required');
  }
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(authorization);
  if (!match) {
    // RFC 6750, section 3.1: a malformed request is 400 invalid_request.
    throw new BearerError(
      400,
      'invalid_request',
      'the Authorization header must be Bearer <token>',
    );
  }

  const claims = await activeAccessToken(context, match[1]!);
  if (claims === null || claims.aud !== resource) {
    throw new BearerError(401, 'invalid_token', 'the access token is invalid, expired or revoked');
  }

  const scopes = new Set(typeof claims.scope === 'string' ? claims.scope.split(' ') : []);
  if (!scopes.has(scope)) {
    throw new BearerError(
      403,
      'insufficient_scope',
      `the access token lacks scope ${scope}`,
      scope,
    );
  }
  const channel = text(claims.channel);
  return {
    workspace: claims.workspace as string,
    agent: claims.agent as string,
    channel,
    invoker: text(claims.invoker),
    thread: text(claims.thread),
    identity: claims.sub,
    scope: scopeName(channel),
    scopes,
    clientId: claims.client_id as string,
    jti: claims.jti,
    expiresAt: claims.exp,
    isActive: () => claims.exp > Date.now() / 1000 && isActive(context, claims, ACCESS_TOKEN_TYPE),
  };
}

/** Maximum tokens whose signature check is remembered. */
const VERIFIED_CACHE_SIZE = 10_000;

/** Signature-checked access tokens by their text, per issuer context, oldest first. */
const verifiedByContext = new WeakMap<OAuthContext, Map<string, VerifiedDeputyPayload>>();

/**
 * Returns the claims of an active Deputy access token, or null. The signature and claims
 * checks of a token are remembered until it expires. Whether it is still active (revocation,
 * kill switch, policy) is checked on every call.
 */
async function activeAccessToken(
  context: OAuthContext,
  token: string,
): Promise<VerifiedDeputyPayload | null> {
  let verified = verifiedByContext.get(context);
  if (verified === undefined) {
    verified = new Map();
    verifiedByContext.set(context, verified);
  }
  const cached = verified.get(token);
  if (cached !== undefined && cached.exp > Date.now() / 1000) {
    return isActive(context, cached, ACCESS_TOKEN_TYPE) ? cached : null;
  }
  verified.delete(token);

  const active = await activeToken(context, token);
  if (active === null || active.typ !== ACCESS_TOKEN_TYPE) return null;
  if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
  verified.set(token, active.claims);
  return active.claims;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Gateway authentication failures recorded per second; the rest are counted. */
const failureLimit = new AuditRateLimit(20);

/**
 * Records a failed gateway authentication as an `auth.failure` event, at most 20 a second.
 * The token is not recorded: it may be someone else's valid token sent to the wrong place.
 */
export async function recordBearerFailure(
  deputy: Deputy,
  error: BearerError,
  endpoint: 'mcp' | 'proxy',
  requestId: string,
): Promise<void> {
  const suppressed = failureLimit.admit();
  if (suppressed === null) return;
  try {
    await deputy.audit.append({
      type: 'auth.failure',
      actor: { type: 'agent', id: 'anonymous' },
      request_id: requestId,
      detail: {
        problem: error.error ?? 'missing',
        status: error.status,
        endpoint,
        ...(suppressed > 0 ? { suppressed_since_last: suppressed } : {}),
      },
    });
  } catch (auditError) {
    deputy.logger.error(
      { err: auditError, requestId },
      'audit write failed for an authentication failure',
    );
  }
}
