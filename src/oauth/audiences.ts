/** Audiences Deputy issues access tokens for: those a workspace registers, and the gateway. */
import type { Audience } from '../model/policy.js';
import { GATEWAY_SCOPES, type OAuthContext } from './context.js';

/** Id of the built-in gateway audience; policy ids cannot collide because `$` is not allowed. */
export const GATEWAY_AUDIENCE_ID = '$gateway';

/** Lifetime of gateway access tokens, in seconds. */
const GATEWAY_TOKEN_LIFETIME_SECONDS = 300;

/**
 * Finds the audience whose `uri` or `id` is `target` in `workspace`, or the gateway when
 * `target` is its resource identifier. Returns undefined when there is none.
 */
export function findRegisteredAudience(
  context: OAuthContext,
  workspace: string,
  target: string,
): Audience | undefined {
  const gateway = context.settings.gatewayResource;
  if (gateway !== undefined && target === gateway) {
    return {
      id: GATEWAY_AUDIENCE_ID,
      uri: gateway,
      description: 'The Deputy gateway',
      scopes: [...GATEWAY_SCOPES],
      token_lifetime: GATEWAY_TOKEN_LIFETIME_SECONDS,
    };
  }
  const policy = context.deputy.engine.workspace(workspace)?.policy;
  return policy?.audiences.find((entry) => entry.uri === target || entry.id === target);
}
