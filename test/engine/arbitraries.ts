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

/** Picks one of the values, with probability proportional to its weight. */
function weighted<T>(...entries: [value: T, weight: number][]): fc.Arbitrary<T> {
  return fc.oneof(...entries.map(([value, weight]) => ({ weight, arbitrary: fc.constant(value) })));
}

/** Generates `undefined` in `absentWeight` of `1 + absentWeight` draws, else a value. */
function sometimes<T>(arbitrary: fc.Arbitrary<T>, absentWeight = 1): fc.Arbitrary<T | undefined> {
  return fc.oneof(
    { weight: absentWeight, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary },
  );
}

const ruleArbitrary = fc.record({
  actions: someOf(ACTION_PATTERNS),
  resources: someOf(RESOURCE_PATTERNS),
});

const entitlementArbitrary = fc
  .record({ connection: sometimes(fc.constantFrom(...CONNECTIONS)), rule: ruleArbitrary })
  .map(({ connection, rule }) => ({
    ...(connection === undefined ? {} : { connection }),
    ...rule,
  }));

const grantArbitrary = fc.record({
  named: fc.boolean(),
  connection: sometimes(fc.constantFrom(...CONNECTIONS)),
  rule: ruleArbitrary,
  mode: weighted<'agent' | 'agent_and_invoker'>(['agent', 2], ['agent_and_invoker', 1]),
  approval: weighted<'none' | 'required'>(['none', 3], ['required', 1]),
});

export interface PolicyOptions {
  /** Generate only grants that neither depend on the invoker nor need an approval. */
  readonly agentOnly?: boolean;
}

const attachmentArbitrary = fc
  .record({
    bundle: fc.constantFrom(...BUNDLES),
    until: sometimes(fc.constantFrom(...UNTIL), 3),
    agents: sometimes(fc.subarray(['a1', 'a2']), 3),
  })
  .map(({ bundle, until, agents }) => ({
    bundle,
    ...(until === undefined ? {} : { until }),
    ...(agents === undefined ? {} : { agents }),
  }));

const channelArbitrary = (id: string) =>
  fc
    .record({
      visibility: weighted<'public' | 'private' | 'shared'>(
        ['public', 4],
        ['private', 4],
        ['shared', 1],
      ),
      inherit: weighted([true, 3], [false, 1]),
      members: sometimes(fc.subarray(MEMBER_REFERENCES), 2),
      invokers: sometimes(fc.subarray(MEMBER_REFERENCES), 3),
      unattended: fc.boolean(),
      bundles: fc.uniqueArray(attachmentArbitrary, {
        maxLength: 2,
        selector: (item) => item.bundle,
      }),
    })
    .map(({ members, invokers, ...channel }) => ({
      id,
      ...channel,
      // A private channel must list its members.
      ...(members === undefined && channel.visibility === 'private'
        ? { members: ['m1', 'm2'] }
        : {}),
      ...(members === undefined ? {} : { members }),
      ...(invokers === undefined ? {} : { invokers }),
    }));

const bundleArbitrary = (id: string, options: PolicyOptions) =>
  fc
    .record({
      grants: fc.array(grantArbitrary, { minLength: 1, maxLength: 3 }),
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
      secondAgent: weighted<'active' | 'disabled'>(['active', 3], ['disabled', 1]),
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
      workspace: fc.record({
        bundles: fc.uniqueArray(attachmentArbitrary, {
          minLength: 1,
          maxLength: 2,
          selector: (item) => item.bundle,
        }),
        invokers: sometimes(fc.subarray(MEMBER_REFERENCES), 3),
        unattended: weighted([true, 3], [false, 1]),
      }),
      dms: fc.record({
        enabled: weighted([true, 4], [false, 1]),
        unattended: fc.boolean(),
      }),
      channels: fc.tuple(
        ...CHANNELS.map((id) => fc.option(channelArbitrary(id), { nil: undefined, freq: 10 })),
      ),
      guardrails: fc.array(
        fc.record({
          rule: ruleArbitrary,
          visibility: sometimes(fc.subarray(['workspace', 'public', 'private', 'dm'] as const)),
        }),
        { maxLength: 2 },
      ),
    })
    .map((parts) => {
      const { invokers, ...workspaceScope } = parts.workspace;
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
          workspace: { ...workspaceScope, ...(invokers === undefined ? {} : { invokers }) },
          dms: parts.dms,
          channels: parts.channels.filter((channel) => channel !== undefined),
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

/** Turns a resource pattern into a concrete id that it matches. */
function instantiateResource(pattern: string): string {
  if (pattern === '**') return 'repo:acme/api';
  return pattern.replace(/\*\*$/, 'x/y').replace(/(^|[/:])\*(?=$|\/)/g, '$1x');
}

/** Turns an action pattern into a concrete action that it matches. */
function instantiateAction(pattern: string): string {
  if (pattern === '**') return 'repo.read';
  if (pattern === '*') return 'deploy';
  return pattern.replace(/\*\*$/, 'x.y').replace(/\*/g, 'x');
}

/** Concrete action and resource pairs that each rule matches, to hit the rules often. */
function rulePairs(
  rules: readonly { actions: readonly string[]; resources: readonly string[] }[],
): [action: string, resource: string][] {
  return rules.flatMap((rule) =>
    rule.actions.flatMap((action) =>
      rule.resources.map((resource): [string, string] => [
        instantiateAction(action),
        instantiateResource(resource),
      ]),
    ),
  );
}

/** Pairs that the policy's grants, entitlements and guardrails match. */
function policyPairs(policy: Policy): [action: string, resource: string][] {
  const pairs = rulePairs([
    ...policy.bundles.flatMap((bundle) => bundle.grants),
    ...policy.members.flatMap((member) => member.entitlements),
    ...policy.groups.flatMap((group) => group.entitlements),
    ...policy.guardrails,
  ]);
  for (const bundle of policy.bundles) {
    pairs.push(
      ...bundle.domains.map((domain): [string, string] => ['web.fetch', `host:${domain}`]),
    );
    pairs.push(
      ...bundle.tools.map((tool): [string, string] => [
        'tool.call',
        instantiateResource(`tool:${tool}`),
      ]),
    );
  }
  return pairs;
}

/** Pairs that a member's own and group entitlements match, for requests in their DM. */
function memberPairs(policy: Policy, memberId: string): [action: string, resource: string][] {
  const member = policy.members.find((candidate) => candidate.id === memberId);
  if (member === undefined) return [];
  const groups = policy.groups.filter((group) => member.groups.includes(group.id));
  return rulePairs([...member.entitlements, ...groups.flatMap((group) => group.entitlements)]);
}

/** Upper-cases the path of a resource id, to exercise case folding. */
function shout(resource: string): string {
  const colon = resource.indexOf(':');
  return resource.slice(0, colon + 1) + resource.slice(colon + 1).toUpperCase();
}

/** Requests mostly to workspace `w`, with actions and resources drawn from `policy`. */
export function requestFor(policy: Policy): fc.Arbitrary<DecisionRequest> {
  const independent = fc.tuple(
    fc.constantFrom(...REQUEST_ACTIONS),
    fc.constantFrom(...REQUEST_RESOURCES),
  );
  const own = fc.constantFrom(...policyPairs(policy));
  const memory = fc.tuple(
    fc.constantFrom('memory.read', 'memory.write', 'Memory.Write'),
    fc.constantFrom(...['workspace', ...CHANNELS, 'dm:m1', 'dm:m2'].map((id) => `memory:${id}`)),
  );
  const pair = fc.oneof(
    { weight: 3, arbitrary: independent },
    { weight: 1, arbitrary: memory },
    { weight: 6, arbitrary: own },
    { weight: 1, arbitrary: own.map(([action, resource]) => [action, shout(resource)] as const) },
  );
  return fc
    .record({
      workspace: weighted(['w', 39], ['other', 1]),
      agent: weighted(['a1', 16], ['a2', 4], ['ghost', 1]),
      channel: weighted<string | undefined>(
        [undefined, 6],
        ['ch1', 6],
        ['ch2', 6],
        ['ch3', 6],
        ['ch9', 1],
        ['dm:m1', 3],
        ['dm:m2', 2],
        ['dm:ghost', 1],
      ),
      invoker: weighted<string | undefined>(
        [undefined, 4],
        ['m1', 4],
        ['m2', 4],
        ['m3', 4],
        ['ghost', 1],
      ),
      pair,
      // In a DM only the member may invoke, so that member is usually the invoker, and the
      // request is often one that their entitlements cover.
      dmByMember: weighted([true, 2], [false, 1]),
      entitlementPick: fc.option(fc.nat(), { nil: undefined }),
    })
    .map(({ channel, invoker, pair, dmByMember, entitlementPick, ...rest }) => {
      const dmMember = channel?.startsWith('dm:') ? channel.slice(3) : undefined;
      const asker = dmMember !== undefined && dmByMember ? dmMember : invoker;
      const entitled = dmMember === undefined ? [] : memberPairs(policy, dmMember);
      const [action, resource] =
        entitlementPick === undefined || entitled.length === 0
          ? pair
          : (entitled[entitlementPick % entitled.length] as [string, string]);
      return {
        ...rest,
        action,
        resource,
        ...(channel === undefined ? {} : { channel }),
        ...(asker === undefined ? {} : { invoker: asker }),
      };
    });
}

/** Generates a random policy together with a request that is likely to reach its rules. */
export function scenarioArbitrary(
  options: PolicyOptions = {},
): fc.Arbitrary<[Policy, DecisionRequest]> {
  return policyArbitrary(options).chain((policy) =>
    fc.tuple(fc.constant(policy), requestFor(policy)),
  );
}
