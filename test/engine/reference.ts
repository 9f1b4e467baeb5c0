/**
 * A naive evaluator of the decision rules, written from the specification and sharing no code
 * with `src/engine`. It reads the policy document directly on every call, so the property
 * tests can compare the compiled engine against it.
 */
import type { Reason } from '../../src/engine/reasons.js';
import type { DecisionRequest } from '../../src/engine/types.js';
import type { Attachment, Entitlement, Policy } from '../../src/model/policy.js';
import { referenceMatchAction, referenceMatchResource } from '../model/reference-match.js';

/** A bundle's grant, domain or tool, with the names a decision reports for it. */
export interface ReferenceGrant {
  readonly bundle: string;
  readonly attachment: string;
  readonly grant: string;
  readonly connection: string | null;
  readonly actions: readonly string[];
  readonly resources: readonly string[];
  readonly identityAware: boolean;
  readonly approval: boolean;
  readonly until: string | undefined;
  readonly agents: readonly string[] | undefined;
}

export interface ReferenceOutcome {
  readonly reason: Reason;
  readonly identity: string | null;
  readonly guardrail: string | null;
  /** The grant a scope decision reports; `null` for DMs, memory and early denials. */
  readonly grant: ReferenceGrant | null;
}

type Visibility = 'workspace' | 'public' | 'private' | 'dm';

const ACTION = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const RESOURCE = /^([a-z][a-z0-9_-]*):(.+)$/s;
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

export function isValidAction(action: unknown): action is string {
  return typeof action === 'string' && ACTION.test(action);
}

export function isValidResource(
  resource: unknown,
  caseInsensitiveTypes: readonly string[] = [],
): resource is string {
  if (typeof resource !== 'string') return false;
  const match = RESOURCE.exec(resource);
  const path = match?.[2];
  if (path === undefined) return false;

  const segments = path.split('/');
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
    return false;
  }
  if (path.includes('*') || UNSAFE.test(path) || path.normalize('NFC') !== path) return false;

  // Case-insensitive types take printable ASCII only;
  // other types take no segment with white space at either end.
  const type = match?.[1] ?? '';
  if (caseInsensitiveTypes.includes(type)) {
    if ([...path].some((char) => char < '!' || char > '~')) return false;
  } else if (segments.some((segment) => segment.trim() !== segment)) {
    return false;
  }
  if (type === 'host') return isPlainHost(path);
  return true;
}

/** A DNS name, or IPv4 written as four decimal octets without leading zeros. */
function isPlainHost(host: string): boolean {
  const labels = host.split('.');
  const label = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
  if (!labels.every((part) => label.test(part))) return false;
  const last = labels[labels.length - 1] ?? '';
  if (!/^\d+$/.test(last) && !/^0x/i.test(last)) return true;
  return (
    labels.length === 4 &&
    labels.every((part) => /^(0|[1-9]\d{0,2})$/.test(part) && Number(part) <= 255)
  );
}

function outcome(
  reason: Reason,
  identity: string | null = null,
  extra: Partial<ReferenceOutcome> = {},
): ReferenceOutcome {
  return { reason, identity, guardrail: null, grant: null, ...extra };
}

/** Decides `request` against the policy of its workspace, or as unknown when there is none. */
export function referenceDecide(
  policies: ReadonlyMap<string, Policy>,
  request: DecisionRequest,
  now: number,
): ReferenceOutcome {
  const policy = policies.get(request.workspace);
  const types = policy?.workspace.case_insensitive_types ?? [];
  if (!isValidAction(request.action) || !isValidResource(request.resource, types)) {
    return outcome('invalid_request');
  }
  if (policy === undefined) return outcome('agent_unknown');

  const agent = policy.agents.find((candidate) => candidate.id === request.agent);
  if (agent === undefined) return outcome('agent_unknown');
  if (agent.status === 'disabled') return outcome('agent_disabled');

  if (request.channel !== undefined && request.channel.startsWith('dm:')) {
    return decideDm(policy, request, request.channel.slice(3));
  }
  return decideChannel(policy, request, now);
}

function decideDm(policy: Policy, request: DecisionRequest, memberId: string): ReferenceOutcome {
  if (!policy.scopes.dms.enabled) return outcome('dms_disabled');
  const member = policy.members.find((candidate) => candidate.id === memberId);
  if (member === undefined) return outcome('scope_unknown');

  const identity = `member:${memberId}`;
  if (request.invoker !== undefined && request.invoker !== memberId) {
    return outcome('invoker_not_permitted', identity);
  }
  if (request.invoker === undefined && !policy.scopes.dms.unattended) {
    return outcome('invoker_required', identity);
  }

  const guardrail = findGuardrail(policy, 'dm', request);
  if (guardrail !== null) return outcome('forbidden_by_guardrail', identity, { guardrail });

  if (typeOf(request.resource) === 'memory') {
    const own = [`dm:${memberId}`];
    return outcome(memoryReason(own, own, request), identity);
  }
  const entitled = entitlementsOf(policy, memberId).some((entitlement) =>
    ruleMatches(policy, entitlement.actions, entitlement.resources, request),
  );
  return outcome(entitled ? 'granted' : 'no_matching_grant', identity);
}

function decideChannel(policy: Policy, request: DecisionRequest, now: number): ReferenceOutcome {
  const channel =
    request.channel === undefined
      ? undefined
      : policy.scopes.channels.find((candidate) => candidate.id === request.channel);
  if (request.channel !== undefined && channel === undefined) return outcome('scope_unknown');
  if (channel?.visibility === 'shared') return outcome('channel_excluded');

  const visibility: Visibility = channel === undefined ? 'workspace' : channel.visibility;
  const identity =
    visibility === 'private'
      ? `agent:${request.agent}/channel:${channel?.id}`
      : `agent:${request.agent}`;

  const invokers = allowedInvokers(policy, channel);
  if (request.invoker !== undefined) {
    const permitted =
      invokers === null
        ? policy.members.some((member) => member.id === request.invoker)
        : invokers.includes(request.invoker);
    if (!permitted) return outcome('invoker_not_permitted', identity);
  } else if (!(channel ?? policy.scopes.workspace).unattended) {
    return outcome('invoker_required', identity);
  }

  const guardrail = findGuardrail(policy, visibility, request);
  if (guardrail !== null) return outcome('forbidden_by_guardrail', identity, { guardrail });

  if (typeOf(request.resource) === 'memory') {
    const own = visibility === 'private' ? (channel?.id as string) : 'workspace';
    return outcome(memoryReason([own, 'workspace'], [own], request), identity);
  }
  return decideGrants(policy, request, scopeGrants(policy, channel?.id), now, identity);
}

/** Members who may invoke in the scope, or `null` when any workspace member may. */
function allowedInvokers(
  policy: Policy,
  channel: Policy['scopes']['channels'][number] | undefined,
): string[] | null {
  if (channel === undefined) {
    const listed = policy.scopes.workspace.invokers;
    return listed === undefined ? null : expand(policy, listed);
  }
  const members = channel.members === undefined ? null : expand(policy, channel.members);
  if (channel.invokers === undefined) return members;

  const listed = expand(policy, channel.invokers);
  return members === null ? listed : listed.filter((id) => members.includes(id));
}

function expand(policy: Policy, references: readonly string[]): string[] {
  return references.flatMap((reference) => {
    if (!reference.startsWith('group:')) return [reference];
    const group = reference.slice('group:'.length);
    return policy.members.filter((member) => member.groups.includes(group)).map((m) => m.id);
  });
}

function findGuardrail(
  policy: Policy,
  visibility: Visibility,
  request: DecisionRequest,
): string | null {
  const rule = policy.guardrails.find(
    (candidate) =>
      (candidate.visibility === undefined || candidate.visibility.includes(visibility)) &&
      ruleMatches(policy, candidate.actions, candidate.resources, request),
  );
  return rule?.id ?? null;
}

function memoryReason(
  readable: readonly string[],
  writable: readonly string[],
  request: DecisionRequest,
): Reason {
  const compartment = request.resource.slice('memory:'.length);
  const action = request.action.toLowerCase();
  if (action === 'memory.read' && readable.includes(compartment)) return 'granted';
  if (action === 'memory.write' && writable.includes(compartment)) return 'granted';
  return 'memory_compartment';
}

/** Grants of the channel's attachments, then of the workspace's unless the channel opts out. */
export function scopeGrants(policy: Policy, channelId: string | undefined): ReferenceGrant[] {
  const workspace = grantsOf(policy, policy.scopes.workspace.bundles, 'workspace');
  if (channelId === undefined) return workspace;

  const channel = policy.scopes.channels.find((candidate) => candidate.id === channelId);
  if (channel === undefined) return [];
  const own = grantsOf(policy, channel.bundles, `channel:${channel.id}`);
  return channel.inherit ? [...own, ...workspace] : own;
}

function grantsOf(
  policy: Policy,
  attachments: readonly Attachment[],
  scope: string,
): ReferenceGrant[] {
  return attachments.flatMap((attachment) => {
    const bundle = policy.bundles.find((candidate) => candidate.id === attachment.bundle);
    if (bundle === undefined) return [];

    const base = {
      bundle: bundle.id,
      attachment: `${scope}/${bundle.id}`,
      until: attachment.until,
      agents: attachment.agents,
    };
    const plain = { connection: null, identityAware: false, approval: false };
    return [
      ...bundle.grants.map((grant, index) => ({
        ...base,
        grant: grant.id ?? `${bundle.id}#${index}`,
        connection: grant.connection ?? null,
        actions: grant.actions,
        resources: grant.resources,
        identityAware: grant.mode === 'agent_and_invoker',
        approval: grant.approval === 'required',
      })),
      ...bundle.domains.map((domain) => ({
        ...base,
        ...plain,
        grant: `${bundle.id}#domain:${domain}`,
        actions: ['web.fetch'],
        resources: [`host:${domain}`],
      })),
      ...bundle.tools.map((tool) => ({
        ...base,
        ...plain,
        grant: `${bundle.id}#tool:${tool}`,
        actions: ['tool.call'],
        resources: [`tool:${tool}`],
      })),
    ];
  });
}

function decideGrants(
  policy: Policy,
  request: DecisionRequest,
  grants: readonly ReferenceGrant[],
  now: number,
  identity: string,
): ReferenceOutcome {
  let approval: ReferenceGrant | null = null;
  let lacking: ReferenceGrant | null = null;
  let needsInvoker: ReferenceGrant | null = null;

  for (const grant of grants) {
    if (grant.until !== undefined && now >= Date.parse(grant.until)) continue;
    if (grant.agents !== undefined && !grant.agents.includes(request.agent)) continue;
    if (!ruleMatches(policy, grant.actions, grant.resources, request)) continue;

    if (grant.identityAware && request.invoker === undefined) {
      needsInvoker ??= grant;
    } else if (
      grant.identityAware &&
      !invokerHolds(policy, request.invoker as string, grant, request)
    ) {
      lacking ??= grant;
    } else if (grant.approval) {
      approval ??= grant;
    } else {
      return outcome('granted', identity, { grant });
    }
  }

  if (approval !== null) return outcome('approval_required', identity, { grant: approval });
  if (lacking !== null) return outcome('invoker_lacks_permission', identity, { grant: lacking });
  if (needsInvoker !== null) return outcome('invoker_required', identity, { grant: needsInvoker });
  return outcome('no_matching_grant', identity);
}

function invokerHolds(
  policy: Policy,
  invoker: string,
  grant: ReferenceGrant,
  request: DecisionRequest,
): boolean {
  return entitlementsOf(policy, invoker).some(
    (entitlement) =>
      (entitlement.connection === undefined || entitlement.connection === grant.connection) &&
      ruleMatches(policy, entitlement.actions, entitlement.resources, request),
  );
}

/** Returns the member's own entitlements, then those of each of their groups. */
export function entitlementsOf(policy: Policy, memberId: string): Entitlement[] {
  const member = policy.members.find((candidate) => candidate.id === memberId);
  if (member === undefined) return [];
  const fromGroups = member.groups.flatMap(
    (groupId) => policy.groups.find((group) => group.id === groupId)?.entitlements ?? [],
  );
  return [...member.entitlements, ...fromGroups];
}

function ruleMatches(
  policy: Policy,
  actions: readonly string[],
  resources: readonly string[],
  request: Pick<DecisionRequest, 'action' | 'resource'>,
): boolean {
  const caseInsensitive = new Set(policy.workspace.case_insensitive_types);
  return (
    actions.some((pattern) => referenceMatchAction(pattern, request.action)) &&
    resources.some((pattern) => referenceMatchResource(pattern, request.resource, caseInsensitive))
  );
}

function typeOf(resource: string): string {
  return resource.slice(0, resource.indexOf(':'));
}
