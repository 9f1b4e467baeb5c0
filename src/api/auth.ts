import type { FastifyReply, FastifyRequest } from 'fastify';

import type { Deputy } from '../deputy.js';
import type { Role } from '../storage/api-keys.js';
import { AuditRateLimit } from '../audit/rate-limit.js';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated API key. */
    caller?: { id: string; role: Role };
  }
}

const BEARER = /^bearer +(\S+)\s*$/i;

/**
 * Returns a pre-handler that admits callers whose API key has one of `roles`. A missing or
 * invalid key is 401 and an audit event; a valid key of another role is 403.
 */
export function requireRole(deputy: Deputy, roles: readonly Role[]) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    // The scheme name is case-insensitive (RFC 9110, section 11.1).
    const key = BEARER.exec(request.headers.authorization ?? '')?.[1];
    const caller = key === undefined ? null : await deputy.keys.verify(key);

    if (caller === null) {
      await recordFailure(deputy, request, key === undefined ? 'missing' : 'invalid');
      reply.header('www-authenticate', 'Bearer realm="deputy"');
      throw new ApiError(
        401,
        'unauthorized',
        'a valid API key is required: Authorization: Bearer <key>',
      );
    }
    if (!roles.includes(caller.role)) {
      throw new ApiError(403, 'forbidden', `this endpoint needs the ${roles.join(' or ')} role`);
    }
    request.caller = caller;
  };
}

/** Authentication failures recorded per second; the rest are counted and summarized. */
const failureLimit = new AuditRateLimit(20);

async function recordFailure(deputy: Deputy, request: FastifyRequest, problem: string) {
  const suppressed = failureLimit.admit();
  if (suppressed === null) return;

  // The key id in the header is unverified, so it is recorded as claimed, not as the actor.
  const claimedKey = /^bearer +dpy_([a-f0-9]{16})_/i.exec(request.headers.authorization ?? '')?.[1];
  try {
    await deputy.audit.append({
      type: 'auth.failure',
      actor: { type: 'api_key', id: 'anonymous' },
      request_id: request.id,
      detail: {
        problem,
        method: request.method,
        route: request.routeOptions.url ?? null,
        claimed_key_id: claimedKey ?? null,
        ...(suppressed > 0 ? { suppressed_since_last: suppressed } : {}),
      },
    });
  } catch (error) {
    request.log.error({ err: error }, 'audit write failed for an authentication failure');
  }
}

/** Returns the audit actor and request id of an authenticated request. */
export function callContext(request: FastifyRequest) {
  return {
    actor: { type: 'api_key' as const, id: request.caller?.id ?? 'anonymous' },
    requestId: request.id,
  };
}
