/**
 * The benchmark workspace: the acme example scaled to 200 bundles and 1,000 channels. It keeps
 * acme's groups, members, agent, connections, guardrails, bundles and channels, and adds
 * generated bundles and channels with the patterns a real workspace uses.
 */
import { readFileSync } from 'node:fs';

import { parsePolicyText } from '../src/config/load.js';
import type { Policy, PolicyInput } from '../src/model/policy.js';
import { formatIssuePath, parsePolicy } from '../src/model/validate.js';
import { createRandom, type Random } from './random.js';

export const ACME_FILE = new URL('../../examples/acme/deputy.yaml', import.meta.url);

export const BUNDLE_COUNT = 200;
export const CHANNEL_COUNT = 1000;

const DAY_MS = 86_400_000;

const TEAMS = [
  'payments',
  'search',
  'identity',
  'mobile',
  'platform',
  'growth',
  'billing',
  'infra',
  'ml',
  'support',
  'checkout',
  'ledger',
];
const SERVICES = ['api', 'web', 'worker', 'gateway', 'sdk', 'jobs', 'schema', 'docs'];
const DATASETS = ['public', 'marketing', 'product', 'sales', 'support', 'finance'];
const REGIONS = ['emea', 'amer', 'apac'];
const DOMAINS = [
  'docs.acme.example',
  'status.acme.example',
  'wiki.acme.example',
  'developer.mozilla.org',
  'docs.github.com',
  'stripe.com',
];

type BundleInput = NonNullable<PolicyInput['bundles']>[number];
type GrantInput = NonNullable<BundleInput['grants']>[number];
type ChannelInput = NonNullable<NonNullable<PolicyInput['scopes']>['channels']>[number];
type AttachmentInput = NonNullable<ChannelInput['bundles']>[number];

/** Counts that describe the generated workspace on the benchmark page. */
export interface PolicySummary {
  bundles: number;
  grants: number;
  identityAwareGrants: number;
  approvalGrants: number;
  channels: Record<'public' | 'private' | 'shared', number>;
  attachments: number;
  timeBoxedAttachments: number;
  expiredAttachments: number;
  members: number;
  guardrails: number;
}

/** Reads and parses the acme example. */
export function loadAcme(): Policy {
  return parsePolicyText(readFileSync(ACME_FILE, 'utf8'), 'examples/acme/deputy.yaml');
}

/**
 * Generates the scaled workspace and validates it with `parsePolicy`. Time-boxed attachments
 * end relative to `now`, so a run always has the same share of live and expired ones.
 */
export function buildScaledPolicy(acme: Policy, now: number, seed = 1): Policy {
  const random = createRandom(seed);
  const input: PolicyInput = structuredClone(acme);
  const bundles = (input.bundles ??= []);
  const firstNew = bundles.length;

  for (let index = bundles.length; index < BUNDLE_COUNT; index++) {
    bundles.push(generateBundle(random, index));
  }

  // The workspace scope already attaches `baseline`, so channels do not attach it again.
  const pools = {
    acme: bundles
      .slice(0, firstNew)
      .flatMap((bundle) => (bundle.id === 'baseline' ? [] : bundle.id)),
    generated: bundles.slice(firstNew).map((bundle) => bundle.id),
  };
  const scopes = (input.scopes ??= {});
  const channels = (scopes.channels ??= []);
  for (let index = channels.length; index < CHANNEL_COUNT; index++) {
    channels.push(generateChannel(random, index, pools, now));
  }

  const result = parsePolicy(input);
  if (!result.ok) {
    const first = result.issues[0];
    const where = first === undefined ? '' : `${formatIssuePath(first.path)}: ${first.message}`;
    throw new Error(`the scaled policy is invalid (${result.issues.length} issues), ${where}`);
  }
  return result.policy;
}

function generateBundle(random: Random, index: number): BundleInput {
  const team = TEAMS[index % TEAMS.length] as string;
  const id = `${team}-${index}`;
  switch (index % 5) {
    case 0:
    case 1:
      return codeBundle(random, id, team);
    case 2:
      return warehouseBundle(random, id);
    case 3:
      return crmBundle(random, id);
    default:
      return researchBundle(random, id, team);
  }
}

/** Generates a bundle for the code of two or three team services, with identity-aware pushes. */
function codeBundle(random: Random, id: string, team: string): BundleInput {
  const repos = random
    .sample(SERVICES, random.integer(2, 3))
    .map((service) => `repo:acme/${team}-${service}`);
  const grants: GrantInput[] = [
    { id: 'read', connection: 'github', actions: ['repo.read', 'issue.read'], resources: repos },
    {
      id: 'push',
      connection: 'github',
      actions: ['repo.write'],
      resources: repos,
      mode: 'agent_and_invoker',
    },
  ];
  if (random.chance(0.5)) {
    grants.push({ id: 'triage', connection: 'github', actions: ['issue.*'], resources: repos });
  }
  if (random.chance(0.3)) {
    grants.push({
      id: 'admin',
      connection: 'github',
      actions: ['repo.admin'],
      resources: [repos[0] as string],
      approval: 'required',
    });
  }
  return { id, description: `Code of the ${team} team`, grants, tools: [`github/${team}`] };
}

/** Generates a bundle that reads one or two datasets and writes one dataset's staging tables. */
function warehouseBundle(random: Random, id: string): BundleInput {
  const datasets = random.sample(DATASETS, random.integer(1, 2));
  const grants: GrantInput[] = [
    {
      id: 'read',
      connection: 'warehouse',
      actions: ['table.read'],
      resources: datasets.map((dataset) => `table:analytics/${dataset}/**`),
    },
    {
      id: 'stage',
      connection: 'warehouse',
      actions: ['table.write'],
      resources: [`table:analytics/${datasets[0]}/staging/*`],
    },
  ];
  if (random.chance(0.4)) {
    grants.push({
      id: 'publish',
      connection: 'warehouse',
      actions: ['table.write'],
      resources: [`table:analytics/${datasets[0]}/*`],
      mode: 'agent_and_invoker',
    });
  }
  return { id, grants, tools: ['sql/query'] };
}

/** Generates a bundle for the accounts and pipeline of one region, with identity-aware writes. */
function crmBundle(random: Random, id: string): BundleInput {
  const region = random.pick(REGIONS);
  const grants: GrantInput[] = [
    {
      id: 'read',
      connection: 'crm',
      actions: ['crm.read'],
      resources: [`crm:accounts/${region}/**`, `crm:opportunities/${region}/**`],
    },
    {
      id: 'update',
      connection: 'crm',
      actions: ['crm.write'],
      resources: [`crm:opportunities/${region}/*`],
      mode: 'agent_and_invoker',
    },
  ];
  if (random.chance(0.3)) {
    grants.push({
      id: 'close',
      connection: 'crm',
      actions: ['crm.close'],
      resources: [`crm:opportunities/${region}/*`],
      approval: 'required',
    });
  }
  return { id, grants };
}

/** Generates a bundle that reads issues across the organisation, web pages and tools. */
function researchBundle(random: Random, id: string, team: string): BundleInput {
  const grants: GrantInput[] = [
    { id: 'issues', connection: 'github', actions: ['issue.read'], resources: ['repo:acme/*'] },
    {
      id: 'handbook',
      connection: 'github',
      actions: ['repo.read'],
      resources: ['repo:acme/handbook', `repo:acme/${team}-docs`],
    },
  ];
  if (random.chance(0.5)) {
    grants.push({ id: 'wiki', actions: ['wiki.read', 'wiki.edit'], resources: ['wiki:acme/**'] });
  }
  return {
    id,
    grants,
    domains: random.sample(DOMAINS, random.integer(1, 3)),
    tools: ['search/web', `notes/${team}`],
  };
}

function generateChannel(
  random: Random,
  index: number,
  pools: { acme: readonly string[]; generated: readonly string[] },
  now: number,
): ChannelInput {
  const id = `C${String(index).padStart(4, '0')}`;
  const roll = random.next();
  let visibility: ChannelInput['visibility'] = 'shared';
  if (roll < 0.6) visibility = 'public';
  else if (roll < 0.9) visibility = 'private';
  // Most channels use the generated bundles; a few reuse acme's own.
  const pool = random.chance(0.9) ? pools.generated : pools.acme;
  const bundles = random
    .sample(pool, random.integer(1, 3))
    .map((bundle) => attachment(random, bundle, now));
  const channel: ChannelInput = { id, visibility, bundles, inherit: random.chance(0.95) };

  if (visibility === 'private') {
    channel.members = randomMembers(random);
    channel.unattended = random.chance(0.7);
  } else if (random.chance(0.2)) {
    channel.invokers = randomMembers(random);
  }
  return channel;
}

/** Attaches `bundle`: 10% of attachments end 30 days after `now` and 3% ended a day before. */
function attachment(random: Random, bundle: string, now: number): AttachmentInput {
  const roll = random.next();
  if (roll < 0.1) return { bundle, until: new Date(now + 30 * DAY_MS).toISOString() };
  if (roll < 0.13) return { bundle, until: new Date(now - DAY_MS).toISOString() };
  return bundle;
}

function randomMembers(random: Random): string[] {
  const references = [
    'group:engineering',
    'group:data',
    'group:sales',
    'group:legal',
    'U01ALICE',
    'U02BOB',
    'U03CAROL',
    'U04DAVE',
    'U05ERIN',
  ];
  return random.sample(references, random.integer(1, 3));
}

/** Counts the generated workspace's bundles, grants, channels and attachments. */
export function summarizePolicy(policy: Policy, now: number): PolicySummary {
  const grants = policy.bundles.flatMap((bundle) => bundle.grants);
  const attachments = policy.scopes.channels.flatMap((channel) => channel.bundles);
  const timeBoxed = attachments.filter((item) => item.until !== undefined);
  const channels = { public: 0, private: 0, shared: 0 };
  for (const channel of policy.scopes.channels) channels[channel.visibility] += 1;

  return {
    bundles: policy.bundles.length,
    grants: grants.length,
    identityAwareGrants: grants.filter((grant) => grant.mode === 'agent_and_invoker').length,
    approvalGrants: grants.filter((grant) => grant.approval === 'required').length,
    channels,
    attachments: attachments.length,
    timeBoxedAttachments: timeBoxed.length,
    expiredAttachments: timeBoxed.filter((item) => Date.parse(item.until as string) <= now).length,
    members: policy.members.length,
    guardrails: policy.guardrails.length,
  };
}
