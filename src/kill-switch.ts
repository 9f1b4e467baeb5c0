/**
 * The kill switch: disabling an agent, or one identity of it, stops issuance and decisions
 * (a new policy revision) and makes every token already issued to it inactive (a principal
 * revocation at the current second). Re-enabling changes the policy back but keeps the
 * revocation, so tokens issued before the disable stay dead.
 */
import type { CallContext, Deputy } from './deputy.js';
import type { Policy } from './model/policy.js';
import { parsePolicy } from './model/validate.js';
import { RevisionConflictError } from './storage/revisions.js';

export interface KillSwitchTarget {
  readonly workspace: string;
  readonly agent: string;
  /** One identity (`agent:<id>/channel:<c>` or `member:<m>`); the whole agent when omitted. */
  readonly identity?: string | undefined;
}

export interface KillSwitchResult {
  readonly revision: number;
  /** Seconds since the epoch: tokens issued at or before this are inactive. */
  readonly revokedAt: number | null;
}

const ATTEMPTS = 5;

/** Disables an agent or identity. Throws TypeError for an unknown workspace, agent or identity. */
export async function disable(
  deputy: Deputy,
  target: KillSwitchTarget,
  call: CallContext,
): Promise<KillSwitchResult> {
  // The change is checked before anything happens, so a rejected disable revokes nothing.
  await editedPolicy(deputy, target, false);
  const principal = target.identity ?? `agent:${target.agent}/*`;
  const revokedAt = Math.floor(Date.now() / 1000);
  await deputy.audit.append({
    type: 'agent.disable',
    workspace: target.workspace,
    actor: call.actor,
    identity: target.identity ?? `agent:${target.agent}`,
    request_id: call.requestId,
    detail: { agent: target.agent, revoked_at: revokedAt },
  });

  // Tokens die first: the revocation needs no policy change to take effect.
  await deputy.revocations.revokePrincipal(target.workspace, principal, revokedAt);
  const revision = await editAgent(deputy, target, false, call);

  // Tokens issued after the first revocation but before the new revision was active are
  // covered by a second one at the current second.
  const finalAt = Math.floor(Date.now() / 1000);
  if (finalAt > revokedAt)
    await deputy.revocations.revokePrincipal(target.workspace, principal, finalAt);
  return { revision, revokedAt: finalAt };
}

/** Enables an agent or identity again. Tokens issued before the disable stay inactive. */
export async function enable(
  deputy: Deputy,
  target: KillSwitchTarget,
  call: CallContext,
): Promise<KillSwitchResult> {
  await deputy.audit.append({
    type: 'agent.enable',
    workspace: target.workspace,
    actor: call.actor,
    identity: target.identity ?? `agent:${target.agent}`,
    request_id: call.requestId,
    detail: { agent: target.agent },
  });
  const revision = await editAgent(deputy, target, true, call);
  return { revision, revokedAt: null };
}

/** Returns the current revision and the policy with the change applied and validated. */
async function editedPolicy(deputy: Deputy, target: KillSwitchTarget, enabled: boolean) {
  const current = await deputy.revisions.current(target.workspace);
  if (!current) throw new TypeError(`workspace ${target.workspace} not found`);

  const policy = structuredClone(current.policy);
  const agent = policy.agents.find((entry) => entry.id === target.agent);
  if (!agent) {
    throw new TypeError(`agent ${target.agent} not found in workspace ${target.workspace}`);
  }
  if (target.identity === undefined) {
    agent.status = enabled ? 'active' : 'disabled';
  } else {
    const others = agent.disabled_identities.filter((identity) => identity !== target.identity);
    agent.disabled_identities = enabled ? others : [...others, target.identity];
  }

  const parsed = parsePolicy(policy);
  if (!parsed.ok) throw new TypeError(parsed.issues.map((issue) => issue.message).join('; '));
  return { revision: current.revision, policy: parsed.policy };
}

/** Applies the status change as a new revision, retrying when another write came first. */
async function editAgent(
  deputy: Deputy,
  target: KillSwitchTarget,
  enabled: boolean,
  call: CallContext,
) {
  const verb = enabled ? 'enable' : 'disable';
  const summary = `${verb} ${target.identity ?? `agent ${target.agent}`}`;
  for (let attempt = 1; ; attempt++) {
    const { revision, policy } = await editedPolicy(deputy, target, enabled);
    try {
      return await deputy.apply(policy, revision, summary, call, 'admin.change');
    } catch (error) {
      if (!(error instanceof RevisionConflictError) || attempt === ATTEMPTS) throw error;
    }
  }
}

/**
 * Carries the kill switch over into a policy file being applied: an agent or identity that is
 * disabled in the stored revision stays disabled, even when the file enables it, so a
 * restart with `serve --config` or an `apply` of an older file cannot undo it. Returns the
 * merged policy and what was kept, as `agent:<id>` or identity names.
 */
export function keepDisabled(current: Policy, next: Policy): { policy: Policy; kept: string[] } {
  const merged = structuredClone(next);
  const kept: string[] = [];
  for (const agent of merged.agents) {
    const stored = current.agents.find((entry) => entry.id === agent.id);
    if (!stored) continue;
    if (stored.status === 'disabled' && agent.status === 'active') {
      agent.status = 'disabled';
      kept.push(`agent:${agent.id}`);
    }
    for (const identity of stored.disabled_identities) {
      if (agent.disabled_identities.includes(identity)) continue;
      const candidate = structuredClone(merged);
      candidate.agents.find((entry) => entry.id === agent.id)!.disabled_identities.push(identity);
      // An identity whose channel or member the file removes cannot be kept, and needs no keeping.
      if (!parsePolicy(candidate).ok) continue;
      agent.disabled_identities.push(identity);
      kept.push(identity);
    }
  }
  return { policy: merged, kept };
}
