import { describe, expect, it } from 'vitest';

import { PolicyEngine } from '../../src/engine/engine.js';
import { PatternError } from '../../src/model/patterns.js';
import type { Policy } from '../../src/model/policy.js';
import { acmeWith, loadAcme } from './acme.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');

const handbook = {
  workspace: 'acme',
  agent: 'helper',
  action: 'repo.read',
  resource: 'repo:acme/handbook',
};

/** Revision 2 of acme: the handbook grant is gone from the baseline bundle. */
const withoutHandbook = acmeWith((policy) => {
  const baseline = policy.bundles.find((bundle) => bundle.id === 'baseline');
  if (baseline === undefined) throw new Error('acme has no baseline bundle');
  baseline.grants = [];
});

describe('revision swap', () => {
  it('decides under the newer revision', () => {
    const engine = new PolicyEngine();
    engine.load(loadAcme(), 1);
    const before = engine.decide(handbook, NOW);

    engine.load(withoutHandbook, 2);
    const after = engine.decide(handbook, NOW);

    expect(before.revision).toBe(1);
    expect(before.reason).toBe('granted');
    expect(after.revision).toBe(2);
    expect(after.reason).toBe('no_matching_grant');
    expect(engine.revision('acme')).toBe(2);
  });

  it('keeps newer over a late older load', () => {
    const engine = new PolicyEngine();
    engine.load(loadAcme(), 1);
    engine.load(withoutHandbook, 2);

    const active = engine.load(loadAcme(), 1);
    const decision = engine.decide(handbook, NOW);

    expect(active.revision).toBe(2);
    expect(engine.revision('acme')).toBe(2);
    expect(decision.revision).toBe(2);
    expect(decision.reason).toBe('no_matching_grant');
  });

  it('keeps the active revision on failure', () => {
    const engine = new PolicyEngine();
    engine.load(loadAcme(), 1);
    // Skips validation on purpose: the partial wildcard only fails when compiled.
    const broken: Policy = structuredClone(withoutHandbook);
    broken.guardrails.push({ id: 'broken', actions: ['**'], resources: ['repo:acme/api*'] });

    expect(() => engine.load(broken, 2)).toThrow(PatternError);
    expect(engine.revision('acme')).toBe(1);
    expect(engine.decide(handbook, NOW).reason).toBe('granted');
  });

  it('unloads a workspace', () => {
    const engine = new PolicyEngine();
    engine.load(loadAcme(), 3);

    engine.unload('acme');
    const decision = engine.decide(handbook, NOW);

    expect(engine.revision('acme')).toBe(0);
    expect(decision.reason).toBe('agent_unknown');
    expect(decision.revision).toBe(0);
  });

  it('keeps workspaces apart', () => {
    const engine = new PolicyEngine();
    const globex = acmeWith((policy) => {
      policy.workspace.id = 'globex';
    });
    engine.load(loadAcme(), 4);
    engine.load(globex, 9);

    expect(engine.workspaceIds()).toEqual(['acme', 'globex']);
    expect(engine.decide(handbook, NOW).revision).toBe(4);
    expect(engine.decide({ ...handbook, workspace: 'globex' }, NOW).revision).toBe(9);
  });
});
