import { describe, expect, it } from 'vitest';

import { PolicyEngine } from '../../src/engine/engine.js';
import type { PolicyInput } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');

/** A workspace whose private channel is named like the shared compartment. */
const input: PolicyInput = {
  version: 1,
  workspace: { id: 'w' },
  members: [{ id: 'm1' }],
  agents: [{ id: 'a1' }],
  scopes: {
    channels: [
      { id: 'workspace', visibility: 'private', members: ['m1'] },
      { id: 'lobby', visibility: 'public' },
    ],
  },
};

describe('memory compartment names', () => {
  // A private channel writes only its own compartment, and public channels read only
  // `memory:workspace`. A private channel whose id is `workspace` must not turn its own
  // compartment into the shared one: either validation rejects the id or the write is denied.
  it('private memory stays private', () => {
    const result = parsePolicy(input);
    if (!result.ok) return;

    const engine = new PolicyEngine();
    engine.load(result.policy, 1);
    const write = engine.decide(
      {
        workspace: 'w',
        agent: 'a1',
        channel: 'workspace',
        invoker: 'm1',
        action: 'memory.write',
        resource: 'memory:workspace',
      },
      NOW,
    );

    expect(write.reason).toBe('memory_compartment');
  });

  it('public channel reads shared memory', () => {
    const result = parsePolicy({ ...input, scopes: { channels: [input.scopes?.channels?.[1]] } });
    if (!result.ok) throw new Error(JSON.stringify(result.issues));

    const engine = new PolicyEngine();
    engine.load(result.policy, 1);
    const read = engine.decide(
      {
        workspace: 'w',
        agent: 'a1',
        channel: 'lobby',
        action: 'memory.read',
        resource: 'memory:workspace',
      },
      NOW,
    );

    expect(read.reason).toBe('granted');
  });
});
