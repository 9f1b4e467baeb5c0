/**
 * The request mix: decision requests drawn from the scaled workspace, so they exercise every
 * path of the decision procedure (grants in channels and the workspace scope, guardrails,
 * identity-aware grants, approvals, expired attachments, shared channels, DMs and memory).
 */
import type { DecisionRequest } from '../src/engine/types.js';
import type { Policy } from '../src/model/policy.js';
import { createRandom, type Random } from './random.js';

type Channel = Policy['scopes']['channels'][number];
type Grant = Policy['bundles'][number]['grants'][number];

/** Share of each kind of request in the mix; the shares add up to 1. */
export const REQUEST_MIX = [
  { kind: 'channel grant', share: 0.3 },
  { kind: 'identity-aware grant', share: 0.12 },
  { kind: 'grant of an unattached bundle', share: 0.12 },
  { kind: 'guardrail', share: 0.1 },
  { kind: 'workspace scope', share: 0.08 },
  { kind: 'DM', share: 0.1 },
  { kind: 'memory', share: 0.1 },
  { kind: 'acme channel', share: 0.08 },
] as const;

type Kind = (typeof REQUEST_MIX)[number]['kind'];

const WORDS = ['api', 'web', 'orders', 'q3', 'globex', 'initech', 'renewal', 'main', 'daily'];

const GUARDRAIL_TARGETS = [
  { action: 'repo.read', resource: 'repo:acme/secrets' },
  { action: 'repo.write', resource: 'repo:ACME/Secrets' },
  { action: 'table.read', resource: 'table:analytics/finance/payroll' },
  { action: 'crm.write', resource: 'crm:opportunities/emea/globex-renewal' },
];

const ACME_REQUESTS = [
  { channel: 'C02ENG', action: 'repo.read', resource: 'repo:acme/api' },
  { channel: 'C02ENG', action: 'repo.write', resource: 'repo:acme/web' },
  { channel: 'C02ENG', action: 'repo.admin', resource: 'repo:acme/infra' },
  { channel: 'C03DATA', action: 'table.read', resource: 'table:analytics/public/orders' },
  { channel: 'C03DATA', action: 'table.write', resource: 'table:analytics/public/orders' },
  { channel: 'C04LEGAL', action: 'repo.read', resource: 'repo:acme/contracts' },
  { channel: 'C05SALES', action: 'crm.read', resource: 'crm:accounts/globex' },
  { channel: 'C06PARTNER', action: 'repo.read', resource: 'repo:acme/api' },
  { channel: 'C07RANDOM', action: 'tool.call', resource: 'tool:search/web' },
];

interface Context {
  readonly policy: Policy;
  readonly random: Random;
  readonly agent: string;
  readonly memberIds: readonly string[];
  readonly groupMembers: ReadonlyMap<string, readonly string[]>;
  readonly bundles: ReadonlyMap<string, Policy['bundles'][number]>;
  readonly channelsWithBundles: readonly Channel[];
  /** Channels that attach at least one identity-aware grant. */
  readonly identityAwareChannels: readonly Channel[];
}

/** Generates `count` requests against the workspace, the same ones for the same seed. */
export function generateRequests(policy: Policy, count: number, seed = 2): DecisionRequest[] {
  const context = createContext(policy, createRandom(seed));
  const requests: DecisionRequest[] = [];
  for (let index = 0; index < count; index++) {
    requests.push(generateRequest(context, pickKind(context.random)));
  }
  return requests;
}

function createContext(policy: Policy, random: Random): Context {
  const groupMembers = new Map<string, string[]>();
  for (const member of policy.members) {
    for (const group of member.groups) {
      groupMembers.set(group, [...(groupMembers.get(group) ?? []), member.id]);
    }
  }
  const bundles = new Map(policy.bundles.map((bundle) => [bundle.id, bundle]));
  const identityAwareChannels = policy.scopes.channels.filter((channel) =>
    channel.bundles.some((attachment) =>
      bundles.get(attachment.bundle)?.grants.some((grant) => grant.mode === 'agent_and_invoker'),
    ),
  );
  const agent = policy.agents[0]?.id;
  if (agent === undefined) throw new Error('the benchmark policy has no agent');

  return {
    policy,
    random,
    agent,
    memberIds: policy.members.map((member) => member.id),
    groupMembers,
    bundles,
    channelsWithBundles: policy.scopes.channels.filter((channel) => channel.bundles.length > 0),
    identityAwareChannels,
  };
}

function pickKind(random: Random): Kind {
  let roll = random.next();
  for (const entry of REQUEST_MIX) {
    roll -= entry.share;
    if (roll < 0) return entry.kind;
  }
  return REQUEST_MIX[0].kind;
}

function generateRequest(context: Context, kind: Kind): DecisionRequest {
  const { random, policy } = context;
  switch (kind) {
    case 'channel grant': {
      const channel = random.pick(context.channelsWithBundles);
      const bundle = random.pick(channel.bundles).bundle;
      return grantRequest(context, channel, random.pick(bundleGrants(context, bundle)));
    }
    case 'identity-aware grant': {
      const channel = random.pick(context.identityAwareChannels);
      const grants = channel.bundles
        .flatMap((attachment) => bundleGrants(context, attachment.bundle))
        .filter((grant) => grant.mode === 'agent_and_invoker');
      return grantRequest(context, channel, random.pick(grants));
    }
    case 'grant of an unattached bundle': {
      const channel = random.pick(policy.scopes.channels);
      const bundle = random.pick(policy.bundles).id;
      return grantRequest(context, channel, random.pick(bundleGrants(context, bundle)));
    }
    case 'guardrail': {
      const channel = random.pick(policy.scopes.channels);
      const { action, resource } = random.pick(GUARDRAIL_TARGETS);
      return channelRequest(context, channel, action, resource);
    }
    case 'workspace scope':
      return workspaceRequest(context);
    case 'DM':
      return dmRequest(context);
    case 'memory':
      return memoryRequest(context);
    case 'acme channel': {
      const { channel, action, resource } = random.pick(ACME_REQUESTS);
      const found = policy.scopes.channels.find((candidate) => candidate.id === channel);
      if (found === undefined) throw new Error(`the acme channel ${channel} is missing`);
      return channelRequest(context, found, action, resource);
    }
  }
}

/** Returns the grants of a bundle, with its domains and tools as the grants they imply. */
function bundleGrants(context: Context, bundleId: string): Grant[] {
  const bundle = context.bundles.get(bundleId);
  if (bundle === undefined) throw new Error(`unknown bundle ${bundleId}`);
  const implied: Grant[] = [
    ...bundle.domains.map((domain) => impliedGrant('web.fetch', `host:${domain}`)),
    ...bundle.tools.map((tool) => impliedGrant('tool.call', `tool:${tool}`)),
  ];
  return [...bundle.grants, ...implied];
}

function impliedGrant(action: string, resource: string): Grant {
  return { actions: [action], resources: [resource], mode: 'agent', approval: 'none' };
}

/**
 * Builds a request with its fields in the order `toDecisionRequest` sets them, so every
 * request object has the hidden class that requests from the HTTP API have.
 */
function request(
  context: Context,
  channel: string | undefined,
  invoker: string | undefined,
  action: string,
  resource: string,
): DecisionRequest {
  const workspace = context.policy.workspace.id;
  return { workspace, agent: context.agent, channel, invoker, action, resource };
}

function grantRequest(context: Context, channel: Channel, grant: Grant): DecisionRequest {
  const { random } = context;
  const action = concreteAction(random, random.pick(grant.actions));
  const resource = concreteResource(random, random.pick(grant.resources));
  return channelRequest(context, channel, action, resource);
}

/** Builds a request in a channel, mostly from a permitted invoker and sometimes without one. */
function channelRequest(
  context: Context,
  channel: Channel,
  action: string,
  resource: string,
): DecisionRequest {
  const { random } = context;
  const roll = random.next();
  let invoker: string | undefined;
  if (roll < 0.85) {
    const permitted = permittedInvokers(context, channel);
    invoker = random.pick(permitted.length > 0 ? permitted : context.memberIds);
  } else if (roll < 0.9) {
    invoker = random.pick(context.memberIds);
  }
  return request(context, channel.id, invoker, action, resource);
}

function permittedInvokers(context: Context, channel: Channel): string[] {
  const members = channel.members ? expand(context, channel.members) : context.memberIds;
  if (channel.invokers === undefined) return [...members];
  const invokers = new Set(expand(context, channel.invokers));
  return members.filter((member) => invokers.has(member));
}

function expand(context: Context, references: readonly string[]): string[] {
  return references.flatMap((reference) =>
    reference.startsWith('group:')
      ? (context.groupMembers.get(reference.slice('group:'.length)) ?? [])
      : [reference],
  );
}

function workspaceRequest(context: Context): DecisionRequest {
  const { random } = context;
  const target = random.pick([
    { action: 'repo.read', resource: 'repo:acme/handbook' },
    { action: 'issue.read', resource: 'repo:Acme/Handbook' },
    { action: 'tool.call', resource: 'tool:search/web' },
    { action: 'web.fetch', resource: 'host:docs.acme.example' },
    { action: 'repo.write', resource: 'repo:acme/handbook' },
    { action: 'tool.call', resource: 'tool:github/payments' },
  ]);
  const invoker = random.chance(0.7) ? random.pick(context.memberIds) : undefined;
  return request(context, undefined, invoker, target.action, target.resource);
}

/** Builds a request in a member's DM, where the member's own entitlements decide. */
function dmRequest(context: Context): DecisionRequest {
  const { random } = context;
  const member = random.pick(context.memberIds);
  const target = random.pick([
    { action: 'repo.read', resource: `repo:acme/${random.pick(WORDS)}` },
    { action: 'repo.admin', resource: 'repo:acme/infra' },
    { action: 'table.read', resource: 'table:analytics/public/orders' },
    { action: 'crm.write', resource: 'crm:opportunities/globex-renewal' },
    { action: 'memory.read', resource: `memory:dm:${member}` },
  ]);
  const invoker = random.chance(0.9) ? member : undefined;
  return request(context, `dm:${member}`, invoker, target.action, target.resource);
}

/** Builds a memory read or write in a channel, on the workspace, own or another compartment. */
function memoryRequest(context: Context): DecisionRequest {
  const { random, policy } = context;
  const channel = random.pick(policy.scopes.channels);
  const other = random.pick(policy.scopes.channels).id;
  const compartment = random.pick(['workspace', channel.id, other]);
  const action = random.pick(['memory.read', 'memory.write']);
  return channelRequest(context, channel, action, `memory:${compartment}`);
}

/** Replaces the wildcards of an action pattern with concrete segments. */
function concreteAction(random: Random, pattern: string): string {
  if (pattern === '**') return random.pick(['repo.read', 'table.read', 'crm.read']);
  return pattern
    .split('.')
    .map((segment) => (segment.includes('*') ? random.pick(['read', 'write', 'comment']) : segment))
    .join('.');
}

/** Replaces the wildcards of a resource pattern with concrete segments; `**` takes one or two. */
function concreteResource(random: Random, pattern: string): string {
  if (pattern === '**') return 'repo:acme/api';
  const colon = pattern.indexOf(':');
  const path = pattern
    .slice(colon + 1)
    .split('/')
    .map((segment) => {
      if (segment === '*') return random.pick(WORDS);
      if (segment === '**') return random.sample(WORDS, random.integer(1, 2)).join('/');
      return segment;
    })
    .join('/');
  return `${pattern.slice(0, colon)}:${path}`;
}

/** Converts a request to the AuthZEN 1.0 evaluation object a policy enforcement point sends. */
export function toEvaluation(request: DecisionRequest) {
  const colon = request.resource.indexOf(':');
  const properties: Record<string, string> = { workspace: request.workspace };
  if (request.channel !== undefined) properties.channel = request.channel;
  return {
    subject: { type: 'agent', id: request.agent, properties },
    action: { name: request.action },
    resource: { type: request.resource.slice(0, colon), id: request.resource.slice(colon + 1) },
    ...(request.invoker === undefined ? {} : { context: { invoker: request.invoker } }),
  };
}
