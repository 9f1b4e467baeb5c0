import { compileActionPattern, compileResourcePattern } from '../model/patterns.js';
import type { Attachment, Channel, Entitlement, Policy } from '../model/policy.js';
import type {
  CompiledEntitlement,
  CompiledGrant,
  CompiledMember,
  CompiledRule,
  CompiledScope,
  CompiledWorkspace,
  ScopeVisibility,
} from './compiled.js';

interface Context {
  readonly policy: Policy;
  readonly caseInsensitive: ReadonlySet<string>;
  readonly groupMembers: ReadonlyMap<string, readonly string[]>;
  /** Each bundle's rules, compiled once and shared by all of its attachments. */
  readonly bundleRules: Map<string, readonly BundleRule[]>;
  /** Guardrails per scope visibility, compiled once and shared by the scopes. */
  readonly guardrails: Map<ScopeVisibility, CompiledRule[]>;
}

/** A bundle's grant, compiled, before it is attached anywhere. */
type BundleRule = Omit<CompiledGrant, 'bundle' | 'attachment' | 'until' | 'agents'>;

/**
 * Compiles a validated policy into the indexes the engine decides from. The policy must have
 * passed `parsePolicy`: patterns that do not compile throw here.
 */
export function compileWorkspace(policy: Policy, revision: number): CompiledWorkspace {
  const caseInsensitive = new Set(policy.workspace.case_insensitive_types);
  const context: Context = {
    policy,
    caseInsensitive,
    groupMembers: indexGroupMembers(policy),
    bundleRules: new Map(),
    guardrails: new Map(),
  };

  const workspaceGrants = compileAttachments(context, policy.scopes.workspace.bundles, 'workspace');
  const workspaceScope = compileScope(context, {
    scope: 'workspace',
    channel: null,
    visibility: 'workspace',
    invokers: expandInvokers(context, null, policy.scopes.workspace.invokers),
    unattended: policy.scopes.workspace.unattended,
    grants: workspaceGrants,
  });

  const channels = new Map<string, CompiledScope>();
  for (const channel of policy.scopes.channels) {
    channels.set(channel.id, compileChannel(context, channel, workspaceGrants));
  }

  const dmGuardrails = compileGuardrails(context, 'dm');
  return {
    id: policy.workspace.id,
    policy,
    revision,
    caseInsensitiveTypes: caseInsensitive,
    agents: new Map(policy.agents.map((agent) => [agent.id, agent.status])),
    disabledIdentities: new Map(
      policy.agents.map((agent) => [agent.id, new Set(agent.disabled_identities)]),
    ),
    members: compileMembers(context),
    workspaceScope,
    channels,
    dmsEnabled: policy.scopes.dms.enabled,
    dmsUnattended: policy.scopes.dms.unattended,
    dmGuardrails,
    dmGuardrailsByAction: new Map(),
    knownResources: collectResources(policy),
    knownActions: collectActions(policy),
  };
}

function indexGroupMembers(policy: Policy): Map<string, string[]> {
  const groups = new Map<string, string[]>(policy.groups.map((group) => [group.id, []]));
  for (const member of policy.members) {
    for (const group of member.groups) groups.get(group)?.push(member.id);
  }
  return groups;
}

function compileChannel(
  context: Context,
  channel: Channel,
  workspaceGrants: readonly CompiledGrant[],
): CompiledScope {
  const own = compileAttachments(context, channel.bundles, `channel:${channel.id}`);
  const members = channel.members ? expandMembers(context, channel.members) : null;
  return compileScope(context, {
    scope: `channel:${channel.id}`,
    channel: channel.id,
    visibility: channel.visibility,
    invokers: expandInvokers(context, members, channel.invokers),
    unattended: channel.unattended,
    grants: channel.inherit ? [...own, ...workspaceGrants] : own,
  });
}

interface ScopeParts {
  scope: string;
  channel: string | null;
  visibility: ScopeVisibility;
  invokers: ReadonlySet<string> | null;
  unattended: boolean;
  grants: readonly CompiledGrant[];
}

function compileScope(context: Context, parts: ScopeParts): CompiledScope {
  const isPrivate = parts.visibility === 'private';
  const ownCompartment = isPrivate ? (parts.channel as string) : 'workspace';
  return {
    scope: parts.scope,
    channel: parts.channel,
    visibility: parts.visibility,
    invokers: parts.invokers,
    unattended: parts.unattended,
    grants: parts.grants,
    identitySuffix: isPrivate ? `/channel:${parts.channel}` : '',
    guardrails: compileGuardrails(context, parts.visibility),
    byAction: new Map(),
    identities: new Map(),
    memoryRead: new Set([ownCompartment, 'workspace']),
    memoryWrite: new Set([ownCompartment]),
  };
}

function expandMembers(context: Context, references: readonly string[]): Set<string> {
  const members = new Set<string>();
  for (const reference of references) {
    if (reference.startsWith('group:')) {
      for (const id of context.groupMembers.get(reference.slice(6)) ?? []) members.add(id);
    } else {
      members.add(reference);
    }
  }
  return members;
}

/** Invokers default to the scope's members; an explicit list is narrowed to those members. */
function expandInvokers(
  context: Context,
  members: ReadonlySet<string> | null,
  invokers: readonly string[] | undefined,
): ReadonlySet<string> | null {
  if (invokers === undefined) return members;
  const listed = expandMembers(context, invokers);
  if (members === null) return listed;
  return new Set([...listed].filter((id) => members.has(id)));
}

function compileAttachments(
  context: Context,
  attachments: readonly Attachment[],
  scope: string,
): CompiledGrant[] {
  const grants: CompiledGrant[] = [];
  for (const attachment of attachments) {
    const until = attachment.until === undefined ? Infinity : Date.parse(attachment.until);
    const agents = attachment.agents ? new Set(attachment.agents) : null;
    const name = `${scope}/${attachment.bundle}`;

    // Grants are built as plain literals with one field order, so every grant shares one
    // hidden class and the engine's property reads stay monomorphic.
    for (const rule of rulesOf(context, attachment.bundle)) {
      grants.push({
        id: rule.id,
        actions: rule.actions,
        resources: rule.resources,
        bundle: attachment.bundle,
        attachment: name,
        connection: rule.connection,
        identityAware: rule.identityAware,
        approval: rule.approval,
        until,
        agents,
      });
    }
  }
  return grants;
}

function rulesOf(context: Context, bundleId: string): readonly BundleRule[] {
  const cached = context.bundleRules.get(bundleId);
  if (cached) return cached;

  const bundle = context.policy.bundles.find((candidate) => candidate.id === bundleId);
  if (!bundle) throw new TypeError(`attachment names unknown bundle ${bundleId}`);
  const rules: BundleRule[] = bundle.grants.map((grant, index) =>
    bundleRule(context, grant.id ?? `${bundle.id}#${index}`, grant.actions, grant.resources, {
      connection: grant.connection ?? null,
      identityAware: grant.mode === 'agent_and_invoker',
      approval: grant.approval === 'required',
    }),
  );
  for (const domain of bundle.domains) {
    rules.push(
      bundleRule(context, `${bundle.id}#domain:${domain}`, ['web.fetch'], [`host:${domain}`]),
    );
  }
  for (const tool of bundle.tools) {
    const resource = tool === '**' ? 'tool:**' : `tool:${tool}`;
    rules.push(bundleRule(context, `${bundle.id}#tool:${tool}`, ['tool.call'], [resource]));
  }
  for (const prompt of bundle.prompts) {
    const resource = prompt === '**' ? 'prompt:**' : `prompt:${prompt}`;
    rules.push(bundleRule(context, `${bundle.id}#prompt:${prompt}`, ['prompt.get'], [resource]));
  }
  context.bundleRules.set(bundleId, rules);
  return rules;
}

function bundleRule(
  context: Context,
  id: string,
  actions: readonly string[],
  resources: readonly string[],
  options: { connection: string | null; identityAware: boolean; approval: boolean } = {
    connection: null,
    identityAware: false,
    approval: false,
  },
): BundleRule {
  const rule = compileRule(context, id, actions, resources);
  return {
    id: rule.id,
    actions: rule.actions,
    resources: rule.resources,
    connection: options.connection,
    identityAware: options.identityAware,
    approval: options.approval,
  };
}

function compileRule(
  context: Context,
  id: string,
  actions: readonly string[],
  resources: readonly string[],
): CompiledRule {
  return {
    id,
    actions: actions.map(compileActionPattern),
    resources: resources.map((resource) =>
      compileResourcePattern(resource, context.caseInsensitive),
    ),
  };
}

function compileGuardrails(context: Context, visibility: ScopeVisibility): CompiledRule[] {
  const cached = context.guardrails.get(visibility);
  if (cached) return cached;
  const rules = context.policy.guardrails
    .filter((rule) => !rule.visibility || (rule.visibility as string[]).includes(visibility))
    .map((rule) => compileRule(context, rule.id, rule.actions, rule.resources));
  context.guardrails.set(visibility, rules);
  return rules;
}

function compileMembers(context: Context): Map<string, CompiledMember> {
  const groups = new Map(context.policy.groups.map((group) => [group.id, group]));
  const members = new Map<string, CompiledMember>();

  for (const member of context.policy.members) {
    const entitlements = member.entitlements.map((entitlement, index) =>
      compileEntitlement(context, entitlement, `member:${member.id}#${index}`),
    );
    for (const groupId of member.groups) {
      groups.get(groupId)?.entitlements.forEach((entitlement, index) => {
        entitlements.push(compileEntitlement(context, entitlement, `group:${groupId}#${index}`));
      });
    }
    members.set(member.id, { id: member.id, entitlements, entitlementsByAction: new Map() });
  }
  return members;
}

function compileEntitlement(
  context: Context,
  entitlement: Entitlement,
  id: string,
): CompiledEntitlement {
  return {
    ...compileRule(context, id, entitlement.actions, entitlement.resources),
    connection: entitlement.connection ?? null,
  };
}

const isConcrete = (pattern: string) => pattern !== '**' && !pattern.includes('*');

function collectResources(policy: Policy): string[] {
  const resources = new Set<string>(['memory:workspace']);
  const rules = [
    ...policy.bundles.flatMap((bundle) => bundle.grants),
    ...policy.members.flatMap((member) => member.entitlements),
    ...policy.groups.flatMap((group) => group.entitlements),
  ];
  for (const rule of rules) for (const resource of rule.resources) resources.add(resource);
  for (const connection of policy.connections)
    for (const id of connection.resources) resources.add(id);
  for (const bundle of policy.bundles) {
    for (const domain of bundle.domains) resources.add(`host:${domain}`);
    for (const tool of bundle.tools) resources.add(`tool:${tool}`);
    for (const prompt of bundle.prompts) resources.add(`prompt:${prompt}`);
  }
  for (const channel of policy.scopes.channels) {
    if (channel.visibility === 'private') resources.add(`memory:${channel.id}`);
  }
  for (const member of policy.members) resources.add(`memory:dm:${member.id}`);
  return [...resources].filter(isConcrete).sort();
}

function collectActions(policy: Policy): string[] {
  const actions = new Set<string>([
    ...['memory.read', 'memory.write', 'tool.call', 'prompt.get', 'web.fetch'],
  ]);
  const rules = [
    ...policy.bundles.flatMap((bundle) => bundle.grants),
    ...policy.members.flatMap((member) => member.entitlements),
    ...policy.groups.flatMap((group) => group.entitlements),
    ...policy.guardrails,
  ];
  for (const rule of rules) for (const action of rule.actions) actions.add(action.toLowerCase());
  for (const connection of policy.connections) {
    for (const action of connection.actions) actions.add(action.toLowerCase());
  }
  return [...actions].filter(isConcrete).sort();
}
