import { describe, expect, it } from 'vitest';

import type { PolicyEngine } from '../../src/engine/engine.js';
import {
  searchActions,
  searchAgents,
  searchResources,
  type SearchScope,
} from '../../src/engine/search.js';
import type { Policy } from '../../src/model/policy.js';
import { engineFor, extendedAcme, loadAcme } from './acme.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const AFTER_INCIDENT = Date.parse('2027-02-01T00:00:00Z');

const acme = loadAcme();
const cases: [name: string, policy: Policy, engine: PolicyEngine][] = [
  ['acme', acme, engineFor(acme)],
  ['extended acme', extendedAcme, engineFor(extendedAcme)],
];

/** Lists every scope of the workspace, each unattended and with each member as invoker. */
function scopesOf(policy: Policy): SearchScope[] {
  const channels: (string | undefined)[] = [
    undefined,
    ...policy.scopes.channels.map((channel) => channel.id),
    ...policy.members.map((member) => `dm:${member.id}`),
    'C99NOPE',
  ];
  const invokers = [undefined, ...policy.members.map((member) => member.id)];
  return channels.flatMap((channel) =>
    invokers.map((invoker) => ({ workspace: policy.workspace.id, channel, invoker })),
  );
}

function known(engine: PolicyEngine) {
  const workspace = engine.workspace('acme');
  if (workspace === undefined) throw new Error('acme is not loaded');
  return { resources: workspace.knownResources, actions: workspace.knownActions };
}

describe.each(cases)('search over %s', (_name, policy, engine) => {
  const { resources, actions } = known(engine);
  const agents = policy.agents.map((agent) => agent.id).sort();
  const allowed = (scope: SearchScope, agent: string, action: string, resource: string) =>
    engine.decide({ ...scope, agent, action, resource }, NOW).allowed;

  it('resources match decisions', () => {
    for (const scope of scopesOf(policy)) {
      for (const action of actions) {
        const found = searchResources(engine, scope, 'helper', action, undefined, NOW);

        expect(found.every((decision) => decision.allowed)).toBe(true);
        expect(found.every((decision) => decision.action === action)).toBe(true);
        expect(found.map((decision) => decision.resource)).toEqual(
          resources.filter((resource) => allowed(scope, 'helper', action, resource)),
        );
      }
    }
  });

  it('actions match decisions', () => {
    for (const scope of scopesOf(policy)) {
      for (const resource of resources) {
        const found = searchActions(engine, scope, 'helper', resource, NOW);

        expect(found.every((decision) => decision.allowed)).toBe(true);
        expect(found.every((decision) => decision.resource === resource)).toBe(true);
        expect(found.map((decision) => decision.action)).toEqual(
          actions.filter((action) => allowed(scope, 'helper', action, resource)),
        );
      }
    }
  });

  it('agents match decisions', () => {
    for (const scope of scopesOf(policy)) {
      for (const action of actions) {
        for (const resource of resources) {
          const found = searchAgents(engine, scope, action, resource, NOW);

          expect(found.every((decision) => decision.allowed)).toBe(true);
          expect(found.map((decision) => decision.agent)).toEqual(
            agents.filter((agent) => allowed(scope, agent, action, resource)),
          );
        }
      }
    }
  });

  it('finds something in many scopes', () => {
    // Guards the agreement tests above against passing on empty results. Most DM scopes find
    // nothing, because only the member may invoke there.
    const nonEmpty = scopesOf(policy).filter((scope) =>
      actions.some(
        (action) => searchResources(engine, scope, 'helper', action, undefined, NOW).length > 0,
      ),
    );
    expect(nonEmpty.length).toBeGreaterThan(scopesOf(policy).length / 3);
  });
});

describe('acme search results', () => {
  const engine = engineFor(acme);
  const data = { workspace: 'acme', channel: 'C03DATA', invoker: 'U02BOB' };

  it('lists enumerable resources only', () => {
    const { resources } = known(engine);

    expect(resources.filter((resource) => resource.includes('*'))).toEqual([]);
    expect(resources).toContain('repo:acme/secrets');
    expect(resources).toContain('memory:workspace');
    expect(resources).toContain('memory:C04LEGAL');
    expect(resources).toContain('memory:dm:U01ALICE');
    expect(resources).toContain('tool:files/read_text_file');
    expect(resources).toContain('host:docs.acme.example');
  });

  it('lists concrete actions only', () => {
    expect(known(engine).actions).toEqual([
      'crm.read',
      'crm.write',
      'issue.read',
      'issue.write',
      'memory.read',
      'memory.write',
      'prompt.get',
      'repo.admin',
      'repo.read',
      'repo.write',
      'table.read',
      'table.write',
      'tool.call',
      'web.fetch',
    ]);
  });

  it('skips guarded tables', () => {
    const found = searchResources(engine, data, 'helper', 'table.read', 'table', NOW);

    expect(found.map((decision) => decision.resource)).toEqual([
      'table:analytics/public/customers',
      'table:analytics/public/orders',
    ]);
  });

  it('skips the secrets repo', () => {
    const engineering = { workspace: 'acme', channel: 'C02ENG', invoker: 'U01ALICE' };
    const found = searchResources(engine, engineering, 'helper', 'repo.read', 'repo', NOW);

    expect(found.map((decision) => decision.resource)).toEqual([
      'repo:acme/api',
      'repo:acme/contracts',
      'repo:acme/handbook',
      'repo:acme/infra',
      'repo:acme/web',
    ]);
  });

  it('filters by resource type', () => {
    const found = searchResources(
      engine,
      { workspace: 'acme' },
      'helper',
      'tool.call',
      'tool',
      NOW,
    );

    expect(found.map((decision) => decision.resource)).toEqual([
      'tool:files/list_directory',
      'tool:files/read_text_file',
      'tool:files/search_files',
    ]);
  });

  it('lists private memory compartments', () => {
    const legal = { workspace: 'acme', channel: 'C04LEGAL', invoker: 'U03CAROL' };
    const read = searchResources(engine, legal, 'helper', 'memory.read', 'memory', NOW);
    const write = searchResources(engine, legal, 'helper', 'memory.write', 'memory', NOW);

    expect(read.map((decision) => decision.resource)).toEqual([
      'memory:C04LEGAL',
      'memory:workspace',
    ]);
    expect(write.map((decision) => decision.resource)).toEqual(['memory:C04LEGAL']);
  });

  it('leaves out approval grants', () => {
    const engineering = { workspace: 'acme', channel: 'C02ENG', invoker: 'U01ALICE' };
    const found = searchActions(engine, engineering, 'helper', 'repo:acme/infra', NOW);

    expect(found.map((decision) => decision.action)).toEqual([
      'issue.read',
      'issue.write',
      'repo.read',
      'repo.write',
    ]);
  });

  it('honours the clock', () => {
    const before = searchResources(engine, data, 'helper', 'table.write', undefined, NOW);
    const after = searchResources(engine, data, 'helper', 'table.write', undefined, AFTER_INCIDENT);

    expect(before.map((decision) => decision.resource)).toEqual(['table:analytics/public/orders']);
    expect(after).toEqual([]);
  });

  it('returns nothing for unknown workspaces', () => {
    const globex = { workspace: 'globex' };

    expect(searchAgents(engine, globex, 'repo.read', 'repo:acme/handbook', NOW)).toEqual([]);
    expect(searchResources(engine, globex, 'helper', 'repo.read', undefined, NOW)).toEqual([]);
    expect(searchActions(engine, globex, 'helper', 'repo:acme/handbook', NOW)).toEqual([]);
  });
});

describe('extended acme agent search', () => {
  const engine = engineFor(extendedAcme);

  it('skips disabled agents', () => {
    const found = searchAgents(
      engine,
      { workspace: 'acme' },
      'repo.read',
      'repo:acme/handbook',
      NOW,
    );

    expect(found.map((decision) => decision.agent)).toEqual(['helper', 'scout']);
  });

  it('honours attachment agent lists', () => {
    const pipeline = { workspace: 'acme', channel: 'C08PIPELINE' };
    const found = searchAgents(
      engine,
      pipeline,
      'table.read',
      'table:analytics/public/orders',
      NOW,
    );

    expect(found.map((decision) => decision.agent)).toEqual(['helper']);
  });
});
