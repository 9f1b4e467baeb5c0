/**
 * Policy diffs: entries added, removed and changed per section, and the access
 * that agents and members gain or lose in each scope. `deputy plan` prints it.
 */
import type { Policy } from '../model/policy.js';
import type { CompiledGrant, CompiledScope, CompiledWorkspace } from './compiled.js';
import { compileWorkspace } from './compile.js';

export interface SectionChange {
  readonly section: string;
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

/** Access one principal gains or loses in one scope, each line describing one grant. */
export interface AccessChange {
  /** `agent:<id>`, or `member:<id>` for invokers and DM rights. */
  readonly principal: string;
  readonly scope: string;
  readonly gains: string[];
  readonly losses: string[];
}

export interface PolicyDiff {
  readonly workspace: string;
  readonly sections: SectionChange[];
  readonly access: AccessChange[];
  readonly unchanged: boolean;
}

const SECTIONS: Record<string, (policy: Policy) => { id: string }[]> = {
  groups: (policy) => policy.groups,
  members: (policy) => policy.members,
  agents: (policy) => policy.agents,
  connections: (policy) => policy.connections,
  bundles: (policy) => policy.bundles,
  channels: (policy) => policy.scopes.channels,
  guardrails: (policy) => policy.guardrails,
  audiences: (policy) => policy.audiences,
  federation: (policy) => policy.federation,
};

/** Compares two revisions of one workspace; `before` is `null` for a new workspace. */
export function diffPolicies(before: Policy | null, after: Policy, now = Date.now()): PolicyDiff {
  const sections: SectionChange[] = [];
  for (const [section, select] of Object.entries(SECTIONS)) {
    const change = diffSection(section, before ? select(before) : [], select(after));
    if (change.added.length + change.removed.length + change.changed.length > 0)
      sections.push(change);
  }
  for (const key of ['workspace'] as const) {
    if (JSON.stringify(before?.[key]) !== JSON.stringify(after[key])) {
      sections.push({ section: key, added: [], removed: [], changed: [key] });
    }
  }
  for (const scope of ['workspace', 'dms'] as const) {
    if (JSON.stringify(before?.scopes[scope]) !== JSON.stringify(after.scopes[scope])) {
      sections.push({ section: 'scopes', added: [], removed: [], changed: [scope] });
    }
  }

  const access = diffAccess(
    before ? compileWorkspace(before, 0) : null,
    compileWorkspace(after, 0),
    now,
  );
  return {
    workspace: after.workspace.id,
    sections,
    access,
    unchanged: sections.length === 0 && access.length === 0,
  };
}

function diffSection(
  section: string,
  before: { id: string }[],
  after: { id: string }[],
): SectionChange {
  const old = new Map(before.map((entry) => [entry.id, JSON.stringify(entry)]));
  const current = new Map(after.map((entry) => [entry.id, JSON.stringify(entry)]));
  return {
    section,
    added: [...current.keys()].filter((id) => !old.has(id)),
    removed: [...old.keys()].filter((id) => !current.has(id)),
    changed: [...current.keys()].filter((id) => old.has(id) && old.get(id) !== current.get(id)),
  };
}

function diffAccess(
  before: CompiledWorkspace | null,
  after: CompiledWorkspace,
  now: number,
): AccessChange[] {
  const changes: AccessChange[] = [];
  const agents = new Set([...(before?.agents.keys() ?? []), ...after.agents.keys()]);
  const scopes = new Set([
    'workspace',
    ...(before?.channels.keys() ?? []),
    ...after.channels.keys(),
  ]);

  for (const agent of [...agents].sort()) {
    for (const scope of scopes) {
      const old = agentAccess(before, agent, scope, now);
      const current = agentAccess(after, agent, scope, now);
      pushChange(
        changes,
        `agent:${agent}`,
        scope === 'workspace' ? scope : `channel:${scope}`,
        old,
        current,
      );
    }
  }
  for (const scope of scopes) {
    pushChange(
      changes,
      'invokers',
      scope === 'workspace' ? scope : `channel:${scope}`,
      invokers(before, scope),
      invokers(after, scope),
    );
  }
  const members = new Set([...(before?.members.keys() ?? []), ...after.members.keys()]);
  for (const member of [...members].sort()) {
    pushChange(
      changes,
      `member:${member}`,
      `dm:${member}`,
      memberAccess(before, member),
      memberAccess(after, member),
    );
  }
  return changes;
}

function pushChange(
  changes: AccessChange[],
  principal: string,
  scope: string,
  old: Set<string>,
  current: Set<string>,
) {
  const gains = [...current].filter((line) => !old.has(line)).sort();
  const losses = [...old].filter((line) => !current.has(line)).sort();
  if (gains.length + losses.length > 0) changes.push({ principal, scope, gains, losses });
}

function scopeOf(workspace: CompiledWorkspace, id: string): CompiledScope | undefined {
  return id === 'workspace' ? workspace.workspaceScope : workspace.channels.get(id);
}

function agentAccess(
  workspace: CompiledWorkspace | null,
  agent: string,
  scopeId: string,
  now: number,
) {
  const lines = new Set<string>();
  if (!workspace || workspace.agents.get(agent) !== 'active') return lines;
  const scope = scopeOf(workspace, scopeId);
  if (!scope || scope.visibility === 'shared') return lines;
  const identity = `agent:${agent}${scope.identitySuffix}`;
  if (workspace.disabledIdentities.get(agent)?.has(identity)) return lines;
  for (const grant of scope.grants) {
    if (grant.until <= now || (grant.agents !== null && !grant.agents.has(agent))) continue;
    lines.add(describeGrant(grant));
  }
  return lines;
}

function describeGrant(grant: CompiledGrant): string {
  const actions = grant.actions.map((pattern) => pattern.source).join(', ');
  const resources = grant.resources.map((pattern) => pattern.source).join(', ');
  const via = grant.connection ? ` via ${grant.connection}` : '';
  const mode = grant.identityAware ? ' (invoker must hold it too)' : '';
  const approval = grant.approval ? ' (approval required)' : '';
  return `${actions} on ${resources}${via}${mode}${approval} [${grant.attachment}]`;
}

function invokers(workspace: CompiledWorkspace | null, scopeId: string): Set<string> {
  const scope = workspace ? scopeOf(workspace, scopeId) : undefined;
  if (!workspace || !scope || scope.visibility === 'shared') return new Set();
  const ids = scope.invokers ?? new Set(workspace.members.keys());
  return new Set([...ids].map((id) => `may invoke: member:${id}`));
}

function memberAccess(workspace: CompiledWorkspace | null, member: string): Set<string> {
  const compiled = workspace?.members.get(member);
  if (!workspace || !compiled || !workspace.dmsEnabled) return new Set();
  return new Set(
    compiled.entitlements.map((rule) => {
      const via = rule.connection ? ` via ${rule.connection}` : '';
      return `${rule.actions.map((p) => p.source).join(', ')} on ${rule.resources.map((p) => p.source).join(', ')}${via}`;
    }),
  );
}

/** Renders a diff for the terminal. */
export function formatDiff(diff: PolicyDiff): string {
  if (diff.unchanged) return `workspace ${diff.workspace}: no changes`;
  const lines = [`workspace ${diff.workspace}:`];
  for (const section of diff.sections) {
    for (const id of section.added) lines.push(`  + ${section.section} ${id}`);
    for (const id of section.removed) lines.push(`  - ${section.section} ${id}`);
    for (const id of section.changed) lines.push(`  ~ ${section.section} ${id}`);
  }
  if (diff.access.length > 0) lines.push('  access:');
  for (const change of diff.access) {
    lines.push(`    ${change.principal} in ${change.scope}:`);
    for (const line of change.gains) lines.push(`      gains  ${line}`);
    for (const line of change.losses) lines.push(`      loses  ${line}`);
  }
  return lines.join('\n');
}
