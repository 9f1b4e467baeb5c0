/**
 * Validation of a policy document: the schema first, then the rules a schema cannot express
 * (unique ids, references between sections, patterns, secret references).
 */
import type { z } from 'zod';

import { InvalidId, parseResource } from './ids.js';
import { checkGatewayKeys } from './validate-gateway.js';
import { compileActionPattern, compileResourcePattern, PatternError } from './patterns.js';
import { type Policy, policySchema, SECRET_REFERENCE } from './policy.js';

export type IssuePath = readonly (string | number)[];

/** One problem in a policy document, located by its path in the document. */
export interface PolicyIssue {
  readonly path: IssuePath;
  readonly message: string;
  readonly fix?: string;
  /** Whether the issue is about the key at `path` (an unknown key) rather than its value. */
  readonly atKey?: boolean;
}

export type PolicyParseResult =
  | { readonly ok: true; readonly policy: Policy }
  | { readonly ok: false; readonly issues: readonly PolicyIssue[] };

/** Validates an untrusted document and returns the normalized policy or every issue found. */
export function parsePolicy(input: unknown): PolicyParseResult {
  const parsed = policySchema.safeParse(input);
  if (!parsed.success) {
    return { ok: false, issues: parsed.error.issues.map((issue) => fromZodIssue(issue, input)) };
  }
  const issues = checkPolicy(parsed.data);
  return issues.length === 0 ? { ok: true, policy: parsed.data } : { ok: false, issues };
}

/** Renders an issue path the way the YAML reads: `bundles[0].grants[1].resources[0]`. */
export function formatIssuePath(path: IssuePath): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? part : `.${part}`;
  }
  return text === '' ? '(document)' : text;
}

function valueAt(input: unknown, path: IssuePath): unknown {
  let value = input;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[part];
  }
  return value;
}

function fromZodIssue(issue: z.core.$ZodIssue, input: unknown): PolicyIssue {
  const path = issue.path.filter((part): part is string | number => typeof part !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.join(', ');
    return {
      path: [...path, issue.keys[0] ?? ''],
      message: `unknown key ${keys}`,
      fix: 'remove it or check its spelling against the configuration reference',
      atKey: true,
    };
  }
  if (path.length > 0 && valueAt(input, path) === undefined) {
    return { path, message: `missing required key`, fix: `add ${formatIssuePath(path)}` };
  }
  return { path, message: issue.message, fix: fixFor(issue) };
}

function fixFor(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `write a value of type ${issue.expected}`;
    case 'invalid_value':
      return `use one of: ${issue.values.map((value) => JSON.stringify(value)).join(', ')}`;
    case 'invalid_format':
      return issue.format === 'datetime'
        ? 'write an ISO 8601 date-time with a time zone, for example 2027-01-31T23:59:59Z'
        : `write a valid ${issue.format}`;
    case 'too_small':
      return `give at least ${String(issue.minimum)}`;
    case 'too_big':
      return `give at most ${String(issue.maximum)}`;
    default:
      return 'see docs/configuration.md for what this key accepts';
  }
}

class IssueList {
  readonly issues: PolicyIssue[] = [];

  add(path: IssuePath, message: string, fix?: string): void {
    this.issues.push(fix === undefined ? { path, message } : { path, message, fix });
  }
}

function checkPolicy(policy: Policy): PolicyIssue[] {
  const list = new IssueList();
  const caseInsensitive = checkTypes(policy, list);

  const groups = uniqueIds(policy.groups, ['groups'], list);
  const members = uniqueIds(policy.members, ['members'], list);
  const agents = uniqueIds(policy.agents, ['agents'], list);
  const connections = uniqueIds(policy.connections, ['connections'], list);
  const bundles = uniqueIds(policy.bundles, ['bundles'], list);
  uniqueIds(policy.scopes.channels, ['scopes', 'channels'], list);
  uniqueIds(policy.guardrails, ['guardrails'], list);
  const refs = { groups, members, agents, connections, bundles, caseInsensitive };

  checkGroupsAndMembers(policy, refs, list);
  checkDisabledIdentities(policy, refs, list);
  checkConnections(policy, caseInsensitive, list);
  checkBundles(policy, refs, list);
  checkScopes(policy, refs, list);
  policy.guardrails.forEach((rule, index) => {
    checkPatterns(rule.actions, rule.resources, ['guardrails', index], caseInsensitive, list);
  });
  uniqueIds(policy.audiences, ['audiences'], list);
  uniqueIds(policy.federation, ['federation'], list);
  checkAudiences(policy, refs, list);
  checkFederation(policy, refs, list);
  return list.issues;
}

interface References {
  groups: Set<string>;
  members: Set<string>;
  agents: Set<string>;
  connections: Set<string>;
  bundles: Set<string>;
  caseInsensitive: Set<string>;
}

function checkTypes(policy: Policy, list: IssueList): Set<string> {
  const types = new Set<string>();
  policy.workspace.case_insensitive_types.forEach((type, index) => {
    if (!/^[a-z][a-z0-9_-]*$/.test(type)) {
      list.add(
        ['workspace', 'case_insensitive_types', index],
        `resource type "${type}" is invalid`,
        'a type is lowercase letters, digits, _ and -, starting with a letter',
      );
    }
    types.add(type);
  });
  return types;
}

function uniqueIds(items: readonly { id: string }[], path: IssuePath, list: IssueList) {
  const seen = new Set<string>();
  items.forEach((item, index) => {
    if (seen.has(item.id)) {
      list.add([...path, index, 'id'], `duplicate id "${item.id}"`, 'give each entry its own id');
    }
    seen.add(item.id);
  });
  return seen;
}

function checkReference(
  value: string,
  known: Set<string>,
  kind: string,
  path: IssuePath,
  list: IssueList,
): void {
  if (!known.has(value)) {
    list.add(path, `unknown ${kind} "${value}"`, `define it under ${kind}s or fix the id`);
  }
}

function checkMemberReferences(
  refs: References,
  values: readonly string[],
  path: IssuePath,
  list: IssueList,
) {
  values.forEach((value, index) => {
    if (value.startsWith('group:')) {
      checkReference(value.slice('group:'.length), refs.groups, 'group', [...path, index], list);
    } else {
      checkReference(value, refs.members, 'member', [...path, index], list);
    }
  });
}

function checkDisabledIdentities(policy: Policy, refs: References, list: IssueList): void {
  const privateChannels = new Set(
    policy.scopes.channels.filter((channel) => channel.visibility === 'private').map((c) => c.id),
  );
  policy.agents.forEach((agent, index) => {
    agent.disabled_identities.forEach((identity, identityIndex) => {
      const own = `agent:${agent.id}`;
      const channel = identity.startsWith(`${own}/channel:`)
        ? identity.slice(own.length + '/channel:'.length)
        : null;
      const member = identity.startsWith('member:') ? identity.slice('member:'.length) : null;
      const valid =
        identity === own ||
        (channel !== null && privateChannels.has(channel)) ||
        (member !== null && refs.members.has(member));
      if (!valid) {
        list.add(
          ['agents', index, 'disabled_identities', identityIndex],
          `"${identity}" is not an identity of agent ${agent.id}`,
          `write ${own}, ${own}/channel:<private channel id> or member:<member id>`,
        );
      }
    });
  });
}

function isUrl(text: string, loopbackHttp: boolean): boolean {
  try {
    const url = new URL(text);
    if (url.protocol === 'https:') return true;
    if (url.protocol !== 'http:') return false;
    return !loopbackHttp || ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  } catch {
    return false;
  }
}

function checkAudiences(policy: Policy, refs: References, list: IssueList): void {
  const uris = new Set<string>();
  policy.audiences.forEach((audience, index) => {
    const at = ['audiences', index];
    if (!isUrl(audience.uri, false)) {
      list.add(
        [...at, 'uri'],
        `uri "${audience.uri}" is not an absolute http(s) URL`,
        'write the resource server URL, for example https://mcp.acme.example/github',
      );
    }
    if (uris.has(audience.uri))
      list.add(
        [...at, 'uri'],
        `uri "${audience.uri}" is used by two audiences`,
        'give each audience its own uri',
      );
    uris.add(audience.uri);
    if (audience.connection !== undefined) {
      checkReference(
        audience.connection,
        refs.connections,
        'connection',
        [...at, 'connection'],
        list,
      );
    }
    audience.scopes.forEach((scope, scopeIndex) => {
      if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(scope)) {
        list.add(
          [...at, 'scopes', scopeIndex],
          `scope "${scope}" is not an action name`,
          'write a lowercase action such as repo.read',
        );
      }
    });
  });
}

const FEDERATION_ALGORITHMS = [
  ...['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512'],
  ...['PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519'],
];

function depthOf(value: unknown, depth = 0): number {
  if (depth > 8 || value === null || typeof value !== 'object') return depth;
  return Math.max(depth, ...Object.values(value).map((member) => depthOf(member, depth + 1)));
}

function checkFederation(policy: Policy, refs: References, list: IssueList): void {
  policy.federation.forEach((issuer, index) => {
    const at = ['federation', index];
    if (!isUrl(issuer.issuer, false)) {
      list.add(
        [...at, 'issuer'],
        `issuer "${issuer.issuer}" is not an absolute http(s) URL`,
        'write the issuer identifier exactly as its tokens carry it in iss',
      );
    }
    if ((issuer.jwks === undefined) === (issuer.jwks_uri === undefined)) {
      list.add(
        at,
        'a trusted issuer needs exactly one of jwks and jwks_uri',
        'give its public keys inline (jwks) or where to fetch them (jwks_uri)',
      );
    }
    if (issuer.jwks_uri !== undefined && !isUrl(issuer.jwks_uri, true)) {
      list.add(
        [...at, 'jwks_uri'],
        `jwks_uri "${issuer.jwks_uri}" must be https, or http on a loopback address`,
        'serve the key set over https',
      );
    }
    issuer.jwks?.keys.forEach((key, keyIndex) => {
      if (depthOf(key) > 4) {
        list.add(
          [...at, 'jwks', 'keys', keyIndex],
          'the key is nested too deeply to be a JWK',
          'list plain JWK objects',
        );
      }
      if (key.kty === 'oct' || 'd' in key || 'k' in key) {
        list.add(
          [...at, 'jwks', 'keys', keyIndex],
          'the key set holds a private or symmetric key',
          'list public keys only',
        );
      }
    });
    issuer.algorithms.forEach((algorithm, algorithmIndex) => {
      if (!FEDERATION_ALGORITHMS.includes(algorithm)) {
        list.add(
          [...at, 'algorithms', algorithmIndex],
          `algorithm "${algorithm}" is not accepted for federated tokens`,
          `use asymmetric algorithms only: ${FEDERATION_ALGORITHMS.join(', ')}`,
        );
      }
    });
    issuer.agents?.forEach((agent, agentIndex) => {
      checkReference(agent, refs.agents, 'agent', [...at, 'agents', agentIndex], list);
    });
  });
}

function checkGroupsAndMembers(policy: Policy, refs: References, list: IssueList): void {
  policy.groups.forEach((group, index) => {
    checkEntitlements(group.entitlements, ['groups', index], refs, list);
  });
  policy.members.forEach((member, index) => {
    member.groups.forEach((group, groupIndex) => {
      checkReference(group, refs.groups, 'group', ['members', index, 'groups', groupIndex], list);
    });
    checkEntitlements(member.entitlements, ['members', index], refs, list);
  });
}

function checkEntitlements(
  entitlements: Policy['members'][number]['entitlements'],
  path: IssuePath,
  refs: References,
  list: IssueList,
): void {
  entitlements.forEach((entitlement, index) => {
    const at = [...path, 'entitlements', index];
    if (entitlement.connection !== undefined) {
      checkReference(
        entitlement.connection,
        refs.connections,
        'connection',
        [...at, 'connection'],
        list,
      );
    }
    checkPatterns(entitlement.actions, entitlement.resources, at, refs.caseInsensitive, list);
  });
}

function checkConnections(policy: Policy, caseInsensitive: Set<string>, list: IssueList): void {
  policy.connections.forEach((connection, index) => {
    const at = ['connections', index];
    const secret = connection.credential?.secret;
    // The value is never echoed: it may be the very secret that must not be in the file.
    if (secret !== undefined && !SECRET_REFERENCE.test(secret)) {
      list.add(
        [...at, 'credential', 'secret'],
        'inline secrets are not allowed in the configuration',
        'write env:NAME to read an environment variable, file:/ABSOLUTE/PATH to read a file, ' +
          'or stored to use a value set through the admin API',
      );
    }
    if (connection.url !== undefined && !isUrlWithoutCredentials(connection.url)) {
      list.add(
        [...at, 'url'],
        'url must be an absolute URL without a user name or password in it',
        'put the credential under credential, as a reference',
      );
    }
    connection.hosts.forEach((host, hostIndex) => {
      if (!isHostName(host)) {
        list.add(
          [...at, 'hosts', hostIndex],
          `host "${host}" is invalid`,
          'write a lowercase host name or IP address, optionally with :port, without a scheme or path',
        );
      }
    });
    checkGatewayKeys(connection, at, caseInsensitive, (path, message, fix) =>
      list.add(path, message, fix),
    );
    connection.resources.forEach((resource, resourceIndex) => {
      const parsed = parseResource(resource, caseInsensitive);
      if (parsed instanceof InvalidId) {
        list.add(
          [...at, 'resources', resourceIndex],
          `${parsed.message}: "${resource}"`,
          'list concrete resource ids here, not patterns',
        );
      }
    });
  });
}

function isUrlWithoutCredentials(text: string): boolean {
  try {
    const url = new URL(text);
    return url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

/** Lowercase DNS name or IPv4 address, with an optional port, or a bracketed IPv6 address. */
export function isHostName(host: string): boolean {
  return /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(:\d{1,5})?$/.test(
    host,
  );
}

function checkBundles(policy: Policy, refs: References, list: IssueList): void {
  policy.bundles.forEach((bundle, index) => {
    const at = ['bundles', index];
    const grantIds = new Set<string>();
    bundle.grants.forEach((grant, grantIndex) => {
      const grantAt = [...at, 'grants', grantIndex];
      if (grant.id !== undefined) {
        if (grantIds.has(grant.id))
          list.add(
            [...grantAt, 'id'],
            `duplicate grant id "${grant.id}"`,
            'give each grant of a bundle its own id',
          );
        grantIds.add(grant.id);
      }
      if (grant.connection !== undefined) {
        checkReference(
          grant.connection,
          refs.connections,
          'connection',
          [...grantAt, 'connection'],
          list,
        );
      }
      checkPatterns(grant.actions, grant.resources, grantAt, refs.caseInsensitive, list);
    });
    bundle.domains.forEach((domain, domainIndex) => {
      if (!isHostName(domain)) {
        list.add(
          [...at, 'domains', domainIndex],
          `domain "${domain}" is invalid`,
          'write a lowercase host name',
        );
      }
    });
    bundle.tools.forEach((tool, toolIndex) => {
      const problem = tool === '**' ? null : checkToolPattern(tool, refs.caseInsensitive);
      if (problem !== null) list.add([...at, 'tools', toolIndex], problem.message, problem.fix);
    });
    bundle.prompts.forEach((prompt, promptIndex) => {
      const problem =
        prompt === '**' ? null : checkToolPattern(prompt, refs.caseInsensitive, 'prompt');
      if (problem !== null) {
        list.add([...at, 'prompts', promptIndex], problem.message, problem.fix);
      }
    });
  });
}

function checkToolPattern(
  tool: string,
  caseInsensitive: Set<string>,
  type: 'tool' | 'prompt' = 'tool',
): PatternError | null {
  try {
    compileResourcePattern(`${type}:${tool}`, caseInsensitive);
    return null;
  } catch (error) {
    if (error instanceof PatternError) return error;
    throw error;
  }
}

function checkScopes(policy: Policy, refs: References, list: IssueList): void {
  const workspaceScope = policy.scopes.workspace;
  checkAttachments(workspaceScope.bundles, ['scopes', 'workspace', 'bundles'], refs, list);
  if (workspaceScope.invokers) {
    checkMemberReferences(refs, workspaceScope.invokers, ['scopes', 'workspace', 'invokers'], list);
  }

  policy.scopes.channels.forEach((channel, index) => {
    const at = ['scopes', 'channels', index];
    checkAttachments(channel.bundles, [...at, 'bundles'], refs, list);
    if (channel.members) checkMemberReferences(refs, channel.members, [...at, 'members'], list);
    if (channel.invokers) checkMemberReferences(refs, channel.invokers, [...at, 'invokers'], list);
    if (channel.id === 'workspace') {
      list.add(
        [...at, 'id'],
        'channel id "workspace" is reserved for the workspace scope and its memory compartment',
        'use the channel id from your chat system',
      );
    }
    if (channel.visibility === 'private' && channel.members === undefined) {
      list.add(
        [...at, 'members'],
        `private channel "${channel.id}" has no members list`,
        'list its members (member ids or group:<id>); without it nobody could invoke the agent there',
      );
    }
  });
}

function checkAttachments(
  attachments: Policy['scopes']['channels'][number]['bundles'],
  path: IssuePath,
  refs: References,
  list: IssueList,
): void {
  const attached = new Set<string>();
  attachments.forEach((attachment, index) => {
    const at = [...path, index];
    if (attached.has(attachment.bundle)) {
      list.add(
        [...at, 'bundle'],
        `bundle "${attachment.bundle}" is attached twice to this scope`,
        'attach it once; use agents and until on that one attachment',
      );
    }
    attached.add(attachment.bundle);
    checkReference(attachment.bundle, refs.bundles, 'bundle', [...at, 'bundle'], list);
    attachment.agents?.forEach((agent, agentIndex) => {
      checkReference(agent, refs.agents, 'agent', [...at, 'agents', agentIndex], list);
    });
  });
}

function checkPatterns(
  actions: readonly string[],
  resources: readonly string[],
  path: IssuePath,
  caseInsensitive: Set<string>,
  list: IssueList,
): void {
  actions.forEach((action, index) => {
    tryPattern(() => compileActionPattern(action), [...path, 'actions', index], list);
  });
  resources.forEach((resource, index) => {
    tryPattern(
      () => compileResourcePattern(resource, caseInsensitive),
      [...path, 'resources', index],
      list,
    );
  });
}

function tryPattern(compile: () => unknown, path: IssuePath, list: IssueList): void {
  try {
    compile();
  } catch (error) {
    if (!(error instanceof PatternError)) throw error;
    list.add(path, error.message, error.fix);
  }
}
