import { matchAction } from '../model/patterns.js';
import type { CompiledGrant, CompiledMember, CompiledWorkspace } from './compiled.js';
import type { IdentityResolution } from './decide.js';

/**
 * Returns the requested OAuth scopes (actions) that an identity could be allowed on some
 * resource of `connection`: a grant of its scope (or, in a DM, an entitlement of its member)
 * names the action and the connection, is in force now and needs no approval. Identity-aware
 * grants count only when the invoker holds the action personally. Resources and guardrails
 * are not considered here: every call with the token is still decided on its own.
 */
export function allowedScopes(
  workspace: CompiledWorkspace,
  resolution: IdentityResolution,
  agent: string,
  invoker: string | undefined,
  connection: string | undefined,
  requested: readonly string[],
  now: number = Date.now(),
): AllowedScopes {
  const member = resolution.member;
  if (member !== null) {
    return {
      scopes: requested.filter((action) => holds(member, connection, action)),
      until: Infinity,
    };
  }

  const grants = resolution.scope?.grants ?? [];
  const invokerMember = invoker === undefined ? undefined : workspace.members.get(invoker);
  const scopes: string[] = [];
  let until = Infinity;
  for (const action of requested) {
    const allowing = grants.filter((grant) =>
      grantAllows(grant, agent, invokerMember, connection, action, now),
    );
    if (allowing.length === 0) continue;
    scopes.push(action);
    // A scope lasts as long as the longest-lived grant that allows it.
    until = Math.min(until, Math.max(...allowing.map((grant) => grant.until)));
  }
  return { scopes, until };
}

/** Scopes an identity may receive, and when the first of them stops being granted. */
export interface AllowedScopes {
  readonly scopes: string[];
  /** Epoch milliseconds at which a time-boxed grant behind the scopes ends; Infinity if none. */
  readonly until: number;
}

function grantAllows(
  grant: CompiledGrant,
  agent: string,
  invoker: CompiledMember | undefined,
  connection: string | undefined,
  action: string,
  now: number,
): boolean {
  if (grant.until <= now || grant.approval) return false;
  if (grant.agents !== null && !grant.agents.has(agent)) return false;
  if (connection !== undefined && grant.connection !== connection) return false;
  if (!grant.actions.some((pattern) => matchAction(pattern, action))) return false;
  return (
    !grant.identityAware ||
    (invoker !== undefined && holds(invoker, grant.connection ?? undefined, action))
  );
}

function holds(member: CompiledMember, connection: string | undefined, action: string): boolean {
  return member.entitlements.some(
    (entitlement) =>
      (connection === undefined ||
        entitlement.connection === null ||
        entitlement.connection === connection) &&
      entitlement.actions.some((pattern) => matchAction(pattern, action)),
  );
}
