/**
 * fast-check generators of small policies and requests. The id and pattern pools are small
 * and overlap on purpose, so random requests often hit grants, guardrails and compartments.
 */
import fc from 'fast-check';

import type { DecisionRequest } from '../../src/engine/types.js';
import type { Policy, PolicyInput } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';

/** The clock the properties decide at; attachments end before, at or after it. */
export const NOW = Date.parse('2026-06-01T12:00:00Z');
const UNTIL = ['2026-06-01T11:59:59Z', '2026-06-01T12:00:00Z', '2026-06-01T12:00:00.001Z'];

const MEMBERS = ['m1', 'm2', 'm3'];
const GROUPS = ['g1', 'g2'];
const MEMBER_REFERENCES = [...MEMBERS, 'group:g1', 'group:g2'];
const CONNECTIONS = ['c1', 'c2'];
const BUNDLES = ['b1', 'b2', 'b3'];
const CHANNELS = ['ch1', 'ch2', 'ch3'];

const ACTION_PATTERNS = [
  'repo.read',
  'repo.*',
  'repo.**',
  'Repo.Write',
  '*',
  '**',
  'memory.read',
  'memory.*',
  'tool.call',
  'web.fetch',
  'table.read',
];

const RESOURCE_PATTERNS = [
  'repo:acme/*',
  'repo:acme/**',
  'repo:acme/api',
  'repo:ACME/Api',
  'repo:**',
  'table:t/*',
  'table:T/**',
  '**',
  'memory:**',
  'memory:workspace',
  'memory:ch1',
  'tool:t/**',
  'tool:u',
  'host:h.example',
];

/** Concrete actions a request names, valid and invalid. */
export const REQUEST_ACTIONS = [
  'repo.read',
  'Repo.Read',
  'repo.write',
  'repo.read.all',
  'memory.read',
  'memory.write',
  'memory.delete',
  'tool.call',
  'web.fetch',
  'table.read',
  'deploy',
  'repo..read',
  'repo.*',
];

/** Concrete resources a request names, valid and invalid. */
export const REQUEST_RESOURCES = [
  'repo:acme/api',
  'repo:ACME/API',
  'repo:acme',
  'repo:acme/api/x',
  'repo:acme-evil/api',
  'table:t/a',
  'table:T/a',
  'table:t/a/b',
  'memory:workspace',
  'memory:ch1',
  'memory:ch2',
  'memory:dm:m1',
  'memory:dm:m2',
  'tool:t/a',
  'tool:u',
  'tool:t',
  'host:h.example',
  'host:H.Example',
  'host:docs.h.example',
  'repo:acme//api',
  'REPO:acme/api',
  'repo:acme/a*',
];

const someOf = <T>(values: readonly T[], minLength = 1, maxLength = 2) =>
  fc.array(fc.constantFrom(...values), { minLength, maxLength });

const ruleArbitrary = fc.record({
  actions: someOf(ACTION_PATTERNS),
  resources: someOf(RESOURCE_PATTERNS),
});

const entitlementArbitrary = fc.record(
  {
    connection: fc.constantFrom(...CONNECTIONS),
    actions: someOf(ACTION_PATTERNS),
    resources: someOf(RESOURCE_PATTERNS),
  },
  { requiredKeys: ['actions', 'resources'] },
);

const grantArbitrary = fc.record(
  {
    named: fc.boolean(),
    connection: fc.constantFrom(...CONNECTIONS),
    rule: ruleArbitrary,
    mode: fc.constantFrom('agent', 'agent_and_invoker'),
    approval: fc.constantFrom('none', 'none', 'required'),
  },
  { requiredKeys: ['named', 'rule', 'mode', 'approval'] },
);

export interface PolicyOptions {
  /** Generate only grants that neither depend on the invoker nor need an approval. */
  readonly agentOnly?: boolean;
}

const attachmentArbitrary = fc.record(
  {
    bundle: fc.constantFrom(...BUNDLES),
    until: fc.constantFrom(...UNTIL),
    agents: fc.subarray(['a1', 'a2']),
  },
  { requiredKeys: ['bundle'] },
);

const channelArbitrary = (id: string) =>
  fc
    .record(
      {
        visibility: fc.constantFrom('public', 'private', 'shared'),
        inherit: fc.boolean(),
        members: fc.subarray(MEMBER_REFERENCES),
        invokers: fc.subarray(MEMBER_REFERENCES),
        unattended: fc.boolean(),
        bundles: fc.array(attachmentArbitrary, { maxLength: 2 }),
      },
      { requiredKeys: ['visibility', 'inherit', 'unattended', 'bundles'] },
    )
    .map((channel) => ({
      id,
      ...channel,
      // A private channel must list its members; an empty list is valid and admits nobody.
      ...(channel.visibility === 'private' && channel.members === undefined ? { members: [] } : {}),
    }));

const bundleArbitrary = (id: string, options: PolicyOptions) =>
  fc
    .record({
      grants: fc.array(grantArbitrary, { maxLength: 3 }),
      domains: fc.subarray(['h.example', 'docs.h.example']),
      tools: fc.subarray(['t/a', 't/**', 'u']),
    })
    .map(({ grants, domains, tools }) => ({
      id,
      grants: grants.map((grant, index) => ({
        ...(grant.named ? { id: `${id}-g${index}` } : {}),
        ...(grant.connection === undefined ? {} : { connection: grant.connection }),
        ...grant.rule,
        mode: options.agentOnly ? 'agent' : grant.mode,
        approval: options.agentOnly ? 'none' : grant.approval,
      })),
      domains,
      tools,
    }));

/** Builds random policy documents that pass validation, for workspace `w`. */
export function policyArbitrary(options: PolicyOptions = {}): fc.Arbitrary<Policy> {
  return fc
    .record({
      caseInsensitiveTypes: fc.constantFrom<string[]>(['repo', 'host', 'email'], ['table'], []),
      secondAgent: fc.constantFrom('active', 'disabled'),
      members: fc.tuple(
        ...MEMBERS.map((id) =>
          fc
            .record({
              groups: fc.subarray(GROUPS),
              entitlements: fc.array(entitlementArbitrary, { maxLength: 2 }),
            })
            .map((member) => ({ id, ...member })),
        ),
      ),
      groups: fc.tuple(
        ...GROUPS.map((id) =>
          fc
            .array(entitlementArbitrary, { maxLength: 2 })
            .map((entitlements) => ({ id, entitlements })),
        ),
      ),
      bundles: fc.tuple(...BUNDLES.map((id) => bundleArbitrary(id, options))),
      workspace: fc.record(
        {
          bundles: fc.array(attachmentArbitrary, { maxLength: 2 }),
          invokers: fc.subarray(MEMBER_REFERENCES),
          unattended: fc.boolean(),
        },
        { requiredKeys: ['bundles', 'unattended'] },
      ),
      dms: fc.record({ enabled: fc.constantFrom(true, true, false), unattended: fc.boolean() }),
      channels: fc.tuple(...CHANNELS.map((id) => fc.option(channelArbitrary(id)))),
      guardrails: fc.array(
        fc.record(
          {
            rule: ruleArbitrary,
            visibility: fc.subarray(['workspace', 'public', 'private', 'dm'] as const),
          },
          { requiredKeys: ['rule'] },
        ),
        { maxLength: 2 },
      ),
    })
    .map((parts) => {
      const input: PolicyInput = {
        version: 1,
        workspace: { id: 'w', case_insensitive_types: parts.caseInsensitiveTypes },
        groups: parts.groups,
        members: parts.members,
        agents: [
          { id: 'a1', status: 'active' },
          { id: 'a2', status: parts.secondAgent },
        ],
        connections: CONNECTIONS.map((id) => ({ id, kind: 'http' })),
        bundles: parts.bundles,
        scopes: {
          workspace: parts.workspace,
          dms: parts.dms,
          channels: parts.channels.filter((channel) => channel !== null),
        },
        guardrails: parts.guardrails.map((guardrail, index) => ({
          id: `gr${index + 1}`,
          ...guardrail.rule,
          ...(guardrail.visibility === undefined ? {} : { visibility: guardrail.visibility }),
        })),
      };
      return validated(input);
    });
}

function validated(input: PolicyInput): Policy {
  const result = parsePolicy(input);
  if (!result.ok) {
    throw new Error(`generated policy is invalid: ${JSON.stringify(result.issues)}`);
  }
  return result.policy;
}

/** Requests to workspace `w` (mostly) or an unknown one, from the pools above. */
export const requestArbitrary: fc.Arbitrary<DecisionRequest> = fc
  .record({
    workspace: fc.constantFrom('w', 'w', 'w', 'w', 'other'),
    agent: fc.constantFrom('a1', 'a1', 'a2', 'ghost'),
    channel: fc.constantFrom(undefined, 'ch1', 'ch2', 'ch3', 'ch9', 'dm:m1', 'dm:m2', 'dm:ghost'),
    invoker: fc.constantFrom(undefined, 'm1', 'm2', 'm3', 'ghost'),
    action: fc.constantFrom(...REQUEST_ACTIONS),
    resource: fc.constantFrom(...REQUEST_RESOURCES),
  })
  .map(({ channel, invoker, ...rest }) => ({
    ...rest,
    ...(channel === undefined ? {} : { channel }),
    ...(invoker === undefined ? {} : { invoker }),
  }));
