/**
 * The example workspace in `examples/acme/deputy.yaml`, loaded through the real YAML loader,
 * and variants of it that add what the example lacks (a disabled agent, an identity-aware
 * grant the invoker cannot use, DMs turned off).
 */
import { readFileSync } from 'node:fs';

import { parsePolicyText } from '../../src/config/load.js';
import { PolicyEngine } from '../../src/engine/engine.js';
import type { Policy } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';

export const ACME_FILE = new URL('../../examples/acme/deputy.yaml', import.meta.url);

/** Parses the example file afresh, so callers may change the result. */
export function loadAcme(): Policy {
  return parsePolicyText(readFileSync(ACME_FILE, 'utf8'), 'examples/acme/deputy.yaml');
}

/** Copies the example, applies `change` and validates the result like any other document. */
export function acmeWith(change: (policy: Policy) => void): Policy {
  const policy = structuredClone(loadAcme());
  change(policy);
  const result = parsePolicy(policy);
  if (!result.ok) throw new Error(`invalid test policy: ${JSON.stringify(result.issues)}`);
  return result.policy;
}

/**
 * Extends the example with a disabled agent `retired` and a second active agent `scout`. The
 * workspace also gets a bundle that tries to grant every memory action on every compartment
 * and a bundle with an id-less grant. A new private channel `C08PIPELINE` (Alice and Dave)
 * has the CRM bundle and the analytics bundle, the latter limited to `helper`.
 */
export const extendedAcme = acmeWith((policy) => {
  policy.agents.push(
    { id: 'retired', status: 'disabled', disabled_identities: [] },
    { id: 'scout', status: 'active', disabled_identities: [] },
  );
  policy.bundles.push(
    {
      id: 'memory-everywhere',
      grants: [
        {
          actions: ['memory.*'],
          resources: ['memory:**'],
          mode: 'agent',
          approval: 'none',
        },
      ],
      domains: [],
      tools: [],
      prompts: [],
    },
    {
      id: 'wiki',
      grants: [
        {
          id: 'wiki-read',
          actions: ['wiki.read'],
          resources: ['wiki:acme/**'],
          mode: 'agent',
          approval: 'none',
        },
        { actions: ['wiki.edit'], resources: ['wiki:acme/**'], mode: 'agent', approval: 'none' },
      ],
      domains: [],
      tools: [],
      prompts: [],
    },
  );
  policy.scopes.workspace.bundles.push({ bundle: 'memory-everywhere' }, { bundle: 'wiki' });
  policy.scopes.channels.push({
    id: 'C08PIPELINE',
    visibility: 'private',
    inherit: true,
    members: ['U01ALICE', 'U04DAVE'],
    unattended: true,
    bundles: [{ bundle: 'crm' }, { bundle: 'analytics', agents: ['helper'] }],
  });
});

/** Turns DMs off in the example. */
export const acmeWithoutDms = acmeWith((policy) => {
  policy.scopes.dms.enabled = false;
});

/** Returns an engine with `policy` loaded as revision 1. */
export function engineFor(policy: Policy): PolicyEngine {
  const engine = new PolicyEngine();
  engine.load(policy, 1);
  return engine;
}
