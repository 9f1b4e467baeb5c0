/**
 * The decision procedure. Checks run in a fixed order, and the first that fails names the
 * reason: request validity, agent, scope, invoker, guardrails, memory compartments, grants.
 */
import { randomBytes } from 'node:crypto';

import { InvalidId, parseAction, parseResource, type ParsedResource } from '../model/ids.js';
import { matchAction, matchResource } from '../model/patterns.js';
import {
  ACTION_CACHE_LIMIT,
  type ActionCandidates,
  type CompiledGrant,
  type CompiledMember,
  type CompiledRule,
  type CompiledScope,
  type CompiledWorkspace,
} from './compiled.js';
import type { Reason } from './reasons.js';
import type { Decision, DecisionRequest } from './types.js';

interface Outcome {
  reason: Reason;
  identity?: string | null;
  detail?: string | null;
  grant?: CompiledGrant | null;
  entitlement?: { id: string; connection: string | null } | null;
  guardrail?: string | null;
}

/**
 * Decides one request against a compiled workspace (`undefined` when none is loaded). `now`
 * (epoch milliseconds) is the time that time-boxed attachments are compared with; the current
 * time when omitted.
 */
export function decide(
  workspace: CompiledWorkspace | undefined,
  request: DecisionRequest,
  now?: number,
): Decision {
  if (!isRequestShape(request)) {
    return toDecision(workspace, EMPTY_REQUEST, 'workspace', {
      reason: 'invalid_request',
      detail:
        'workspace, agent, action and resource must be strings; channel and invoker strings or absent',
    });
  }
  const scope = scopeName(request.channel);
  let outcome: Outcome;
  try {
    if (now !== undefined && !Number.isFinite(now)) {
      // A broken clock must not keep a time-boxed attachment alive.
      throw new TypeError(`now must be a finite number of milliseconds, got ${now}`);
    }
    outcome = evaluate(workspace, request, now);
  } catch (error) {
    // Fail closed: an unexpected error is a deny with its own reason, never an allow.
    outcome = { reason: 'evaluation_error', detail: 'internal error while evaluating' };
    reportEvaluationError(error);
  }
  return toDecision(workspace, request, scope, outcome);
}

/**
 * Decision ids are a random per-process prefix and a counter: unique across processes with
 * overwhelming probability, and far cheaper than a random UUID per decision.
 */
const DECISION_ID_PREFIX = `${randomBytes(12).toString('hex')}-`;
let decisionCounter = 0;

function nextDecisionId(): string {
  return DECISION_ID_PREFIX + ++decisionCounter;
}

const NO_TYPES: ReadonlySet<string> = new Set();
const EMPTY_REQUEST: DecisionRequest = { workspace: '', agent: '', action: '', resource: '' };

function isRequestShape(request: DecisionRequest): boolean {
  if (request === null || typeof request !== 'object') return false;
  const { workspace, agent, action, resource, channel, invoker } = request;
  return (
    typeof workspace === 'string' &&
    typeof agent === 'string' &&
    typeof action === 'string' &&
    typeof resource === 'string' &&
    (channel === undefined || typeof channel === 'string') &&
    (invoker === undefined || typeof invoker === 'string')
  );
}

/** Names a scope as audit events and decisions do: `workspace`, `channel:<id>` or `dm:<member>`. */
export function scopeName(channel: string | undefined): string {
  if (channel === undefined) return 'workspace';
  return channel.startsWith('dm:') ? channel : `channel:${channel}`;
}

let evaluationErrorHandler: (error: unknown) => void = () => {};

/** Sets the function that logs evaluation errors (the decision itself is already a deny). */
export function onEvaluationError(handler: (error: unknown) => void): void {
  evaluationErrorHandler = handler;
}

function reportEvaluationError(error: unknown): void {
  try {
    evaluationErrorHandler(error);
  } catch {
    // A failing logger must not turn a deny into a crash.
  }
}

function toDecision(
  workspace: CompiledWorkspace | undefined,
  request: DecisionRequest,
  scope: string,
  outcome: Outcome,
): Decision {
  const grant = outcome.grant ?? null;
  const entitlement = outcome.entitlement ?? null;
  return {
    allowed: outcome.reason === 'granted',
    reason: outcome.reason,
    detail: outcome.detail ?? null,
    decisionId: nextDecisionId(),
    revision: workspace?.revision ?? 0,
    workspace: request.workspace,
    agent: request.agent,
    scope,
    identity: outcome.identity ?? null,
    invoker: request.invoker ?? null,
    action: request.action,
    resource: request.resource,
    bundle: grant?.bundle ?? null,
    attachment: grant?.attachment ?? null,
    grant: grant?.id ?? entitlement?.id ?? null,
    connection: grant?.connection ?? entitlement?.connection ?? null,
    guardrail: outcome.guardrail ?? null,
  };
}

function evaluate(
  workspace: CompiledWorkspace | undefined,
  request: DecisionRequest,
  now: number | undefined,
): Outcome {
  if (request.workspace === '') {
    return {
      reason: 'invalid_request',
      detail: 'the workspace is required: this server holds several',
    };
  }
  const action = parseAction(request.action);
  if (action instanceof InvalidId) return { reason: 'invalid_request', detail: action.message };

  const resource = parseResource(request.resource, workspace?.caseInsensitiveTypes ?? NO_TYPES);
  if (resource instanceof InvalidId) return { reason: 'invalid_request', detail: resource.message };

  // An unknown workspace is reported as an unknown agent, so callers learn nothing about tenants.
  if (workspace === undefined) return { reason: 'agent_unknown' };

  const resolved = resolveIdentity(workspace, request.agent, request.channel, request.invoker);
  if (resolved.reason !== null) return { reason: resolved.reason, identity: resolved.identity };
  const identity = resolved.identity as string;

  if (resolved.member !== null) {
    return evaluateDm(workspace, resolved.member, identity, action, resource);
  }
  const scope = resolved.scope as CompiledScope;
  const candidates = candidatesFor(scope, action);
  const guardrail = findRule(candidates.guardrails, resource);
  if (guardrail !== null) {
    return { reason: 'forbidden_by_guardrail', identity, guardrail: guardrail.id };
  }

  if (resource.type === 'memory') {
    return { reason: checkMemory(scope.memoryRead, scope.memoryWrite, action, resource), identity };
  }
  return matchGrants(workspace, candidates.grants, request, action, resource, now, identity);
}

/** The identity of an agent in a scope, or the reason it may not act there. */
export interface IdentityResolution {
  /** `null` when the agent may act in the scope. */
  readonly reason: Reason | null;
  readonly identity: string | null;
  /** The channel or workspace scope; `null` for a DM or when resolution failed. */
  readonly scope: CompiledScope | null;
  /** The DM's member; `null` outside DMs. */
  readonly member: CompiledMember | null;
}

/**
 * Resolves the identity an agent acts as in a scope, checking everything that does not depend
 * on the action: the agent, the scope, DMs, the invoker and disabled identities. Token
 * issuance runs the same checks as a decision through this function.
 */
export function resolveIdentity(
  workspace: CompiledWorkspace,
  agent: string,
  channel: string | undefined,
  invoker: string | undefined,
): IdentityResolution {
  const status = workspace.agents.get(agent);
  if (status === undefined) return refusal('agent_unknown', null);
  if (status === 'disabled') return refusal('agent_disabled', null);

  if (channel !== undefined && channel.startsWith('dm:')) {
    return resolveDm(workspace, agent, channel.slice(3), invoker);
  }
  const scope = channel === undefined ? workspace.workspaceScope : workspace.channels.get(channel);
  if (scope === undefined) return refusal('scope_unknown', null);
  if (scope.visibility === 'shared') return refusal('channel_excluded', null);

  const identity = identityIn(scope, agent);
  const disabled = workspace.disabledIdentities.get(agent);
  if (disabled !== undefined && disabled.size > 0 && disabled.has(identity)) {
    return refusal('identity_disabled', identity);
  }
  if (invoker !== undefined) {
    const permitted =
      scope.invokers === null ? workspace.members.has(invoker) : scope.invokers.has(invoker);
    if (!permitted) return refusal('invoker_not_permitted', identity);
  } else if (!scope.unattended) {
    return refusal('invoker_required', identity);
  }
  return { reason: null, identity, scope, member: null };
}

function identityIn(scope: CompiledScope, agent: string): string {
  const cached = scope.identities.get(agent);
  if (cached !== undefined) return cached;
  const identity = `agent:${agent}${scope.identitySuffix}`;
  // Agent ids come from the policy, so the cache has at most one entry per agent.
  scope.identities.set(agent, identity);
  return identity;
}

function resolveDm(
  workspace: CompiledWorkspace,
  agent: string,
  memberId: string,
  invoker: string | undefined,
): IdentityResolution {
  if (!workspace.dmsEnabled) return refusal('dms_disabled', null);
  const member = workspace.members.get(memberId);
  if (member === undefined) return refusal('scope_unknown', null);

  // A DM acts as the member, and only that member may ask for work in it.
  const identity = `member:${memberId}`;
  if (workspace.disabledIdentities.get(agent)?.has(identity)) {
    return refusal('identity_disabled', identity);
  }
  if (invoker !== undefined) {
    if (invoker !== memberId) return refusal('invoker_not_permitted', identity);
  } else if (!workspace.dmsUnattended) {
    return refusal('invoker_required', identity);
  }
  return { reason: null, identity, scope: null, member };
}

function refusal(reason: Reason, identity: string | null): IdentityResolution {
  return { reason, identity, scope: null, member: null };
}

function matchGrants(
  workspace: CompiledWorkspace,
  grants: readonly CompiledGrant[],
  request: DecisionRequest,
  action: string,
  resource: ParsedResource,
  now: number | undefined,
  identity: string,
): Outcome {
  // Denials that a different grant could still lift are remembered, in order of usefulness.
  let approvalGrant: CompiledGrant | null = null;
  let lacking: CompiledGrant | null = null;
  let needsInvoker: CompiledGrant | null = null;

  for (const grant of grants) {
    // The clock is read only for time-boxed attachments: most decisions never need it.
    if (grant.until !== Infinity && grant.until <= (now ??= Date.now())) continue;
    if (grant.agents !== null && !grant.agents.has(request.agent)) continue;
    if (!matchesResource(grant, resource)) continue;

    if (grant.identityAware) {
      if (request.invoker === undefined) {
        needsInvoker ??= grant;
        continue;
      }
      const member = workspace.members.get(request.invoker);
      if (member === undefined || !memberHolds(member, grant.connection, action, resource)) {
        lacking ??= grant;
        continue;
      }
    }
    if (grant.approval) {
      approvalGrant ??= grant;
      continue;
    }
    return { reason: 'granted', identity, grant };
  }

  if (approvalGrant) return { reason: 'approval_required', identity, grant: approvalGrant };
  if (lacking) return { reason: 'invoker_lacks_permission', identity, grant: lacking };
  if (needsInvoker) return { reason: 'invoker_required', identity, grant: needsInvoker };
  return { reason: 'no_matching_grant', identity };
}

function evaluateDm(
  workspace: CompiledWorkspace,
  member: CompiledMember,
  identity: string,
  action: string,
  resource: ParsedResource,
): Outcome {
  const guardrails = cachedByAction(workspace.dmGuardrailsByAction, workspace.dmGuardrails, action);
  const guardrail = findRule(guardrails, resource);
  if (guardrail !== null) {
    return { reason: 'forbidden_by_guardrail', identity, guardrail: guardrail.id };
  }

  if (resource.type === 'memory') {
    const own = new Set([`dm:${member.id}`]);
    return { reason: checkMemory(own, own, action, resource), identity };
  }
  const entitlement = findRule(entitlementsFor(member, action), resource);
  if (entitlement === null) return { reason: 'no_matching_grant', identity };
  return { reason: 'granted', identity, entitlement };
}

const MEMORY_READ = 'memory.read';
const MEMORY_WRITE = 'memory.write';

/**
 * Applies the built-in compartment rules, which no grant can widen. The workspace scope and
 * public channels use `workspace`. A private channel writes only its own compartment and reads
 * its own and `workspace`. A DM reads and writes only its own.
 */
function checkMemory(
  read: ReadonlySet<string>,
  write: ReadonlySet<string>,
  action: string,
  resource: ParsedResource,
): Reason {
  const compartment = resource.path;
  if (action === MEMORY_READ) return read.has(compartment) ? 'granted' : 'memory_compartment';
  if (action === MEMORY_WRITE) return write.has(compartment) ? 'granted' : 'memory_compartment';
  return 'memory_compartment';
}

function memberHolds(
  member: CompiledMember,
  connection: string | null,
  action: string,
  resource: ParsedResource,
): boolean {
  for (const entitlement of entitlementsFor(member, action)) {
    if (entitlement.connection !== null && entitlement.connection !== connection) continue;
    if (matchesResource(entitlement, resource)) return true;
  }
  return false;
}

function findRule<T extends CompiledRule>(rules: readonly T[], resource: ParsedResource): T | null {
  for (const rule of rules) {
    if (matchesResource(rule, resource)) return rule;
  }
  return null;
}

function matchesResource(rule: CompiledRule, resource: ParsedResource): boolean {
  for (const pattern of rule.resources) {
    if (matchResource(pattern, resource.type, resource.path, resource.foldedPath)) return true;
  }
  return false;
}

function candidatesFor(scope: CompiledScope, action: string): ActionCandidates {
  const cached = scope.byAction.get(action);
  if (cached !== undefined) return cached;

  const candidates = {
    grants: filterByAction(scope.grants, action),
    guardrails: filterByAction(scope.guardrails, action),
  };
  if (scope.byAction.size < ACTION_CACHE_LIMIT) scope.byAction.set(action, candidates);
  return candidates;
}

function filterByAction<T extends CompiledRule>(rules: readonly T[], action: string): T[] {
  return rules.filter((rule) => rule.actions.some((pattern) => matchAction(pattern, action)));
}

function entitlementsFor(member: CompiledMember, action: string) {
  return cachedByAction(member.entitlementsByAction, member.entitlements, action);
}

/** Returns the rules whose action patterns match `action`, memoized per scope and action. */
function cachedByAction<T extends CompiledRule>(
  cache: Map<string, readonly T[]>,
  rules: readonly T[],
  action: string,
): readonly T[] {
  const cached = cache.get(action);
  if (cached !== undefined) return cached;

  const matching = rules.filter((rule) =>
    rule.actions.some((pattern) => matchAction(pattern, action)),
  );
  if (cache.size < ACTION_CACHE_LIMIT) cache.set(action, matching);
  return matching;
}
