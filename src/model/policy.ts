/**
 * The policy document: one workspace's members, agents, connections, access bundles, scopes
 * and guardrails. It is what `deputy.yaml` contains, what the admin API edits and what each
 * stored revision holds. Keys are snake_case, as in the YAML file.
 */
import { z } from 'zod';

/** Identifier of a workspace, member, group, agent, channel, connection, bundle or guardrail. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

const id = z
  .string()
  .regex(ID_PATTERN, 'must start with a letter or digit and contain only letters, digits, . _ @ -');

/**
 * A secret reference: `env:NAME` reads an environment variable, `file:PATH` reads a file,
 * `stored` uses the value set through the admin API (sealed in the database).
 */
export const SECRET_REFERENCE = /^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/\S*|stored)$/;

const memberReference = z
  .string()
  .regex(/^(group:)?[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, 'must be a member id or group:<group id>');

/** A personal right of a member or group: what the human may do, optionally through a connection. */
export const entitlementSchema = z.strictObject({
  connection: id.optional(),
  actions: z.array(z.string()).min(1),
  resources: z.array(z.string()).min(1),
});

export const groupSchema = z.strictObject({
  id,
  name: z.string().optional(),
  entitlements: z.array(entitlementSchema).default([]),
});

export const memberSchema = z.strictObject({
  id,
  name: z.string().optional(),
  email: z.string().optional(),
  groups: z.array(id).default([]),
  entitlements: z.array(entitlementSchema).default([]),
});

export const agentSchema = z.strictObject({
  id,
  name: z.string().optional(),
  description: z.string().optional(),
  status: z.enum(['active', 'disabled']).default('active'),
  /**
   * Identities of this agent that may not act (`agent:<id>/channel:<channel>`,
   * `member:<member>` for a DM, or `agent:<id>` for the workspace and public channels).
   */
  disabled_identities: z.array(z.string()).default([]),
});

export const credentialSchema = z.strictObject({
  secret: z.string(),
  /**
   * Presentation of the secret: a bearer token, basic auth, a header, a query or body parameter,
   * a database password, or an environment variable of a stdio MCP server.
   */
  scheme: z
    .enum(['bearer', 'basic', 'header', 'query', 'body', 'password', 'env'])
    .default('bearer'),
  /** Header, query or body parameter name, or environment variable name for `env`. */
  name: z.string().optional(),
  /** User name, for `basic` and `password`. */
  username: z.string().optional(),
});

/** Address ranges a connection may reach although they are not public. */
export const ADDRESS_RANGES = ['loopback', 'private', 'link_local'] as const;

/**
 * A mapping from HTTP requests through the egress proxy to the action and resource that are
 * decided. `{name}` in `path` captures one segment, `**` at its end any rest; `resource` uses
 * the captured names.
 */
export const routeSchema = z.strictObject({
  methods: z.array(z.string()).min(1),
  path: z.string(),
  action: z.string(),
  resource: z.string(),
});

export const connectionSchema = z.strictObject({
  id,
  kind: z
    .string()
    .regex(/^[a-z][a-z0-9_-]*$/, 'must be a lowercase word such as http, postgres or mcp'),
  description: z.string().optional(),
  /** Base URL: the upstream of the egress proxy, or the Streamable HTTP URL of an MCP server. */
  url: z.string().optional(),
  hosts: z.array(z.string()).default([]),
  credential: credentialSchema.optional(),
  /** Known resources behind this connection, enumerated by the AuthZEN search endpoints. */
  resources: z.array(z.string()).default([]),
  /** Known actions on this connection, enumerated by the AuthZEN search endpoints. */
  actions: z.array(z.string()).default([]),
  /** Command line of a stdio MCP server: the executable, then its arguments. */
  command: z.array(z.string().min(1)).min(1).optional(),
  /**
   * Environment of a stdio MCP server. `{compartment}` in a value becomes the directory of the
   * calling identity's memory compartment.
   */
  env: z.record(z.string(), z.string()).default({}),
  /** Whether each memory compartment gets its own upstream process. @default false */
  compartments: z.boolean().default(false),
  /** Whether the egress proxy forwards only GET, HEAD and OPTIONS. @default false */
  read_only: z.boolean().default(false),
  /** Methods the egress proxy forwards; all when omitted (safe methods only when read_only). */
  methods: z.array(z.string()).optional(),
  /** Paths the egress proxy forwards to, compared segment by segment. @default ["/"] */
  path_prefixes: z.array(z.string()).default(['/']),
  /** Non-public address ranges the connection may reach; none by default. */
  allow_addresses: z.array(z.enum(ADDRESS_RANGES)).default([]),
  /** Mappings of egress requests to decisions. Without routes every request is denied. */
  routes: z.array(routeSchema).default([]),
  /** Whether tool call arguments are recorded in the audit log (secrets redacted). */
  audit_arguments: z.boolean().default(false),
  /**
   * Maximum tool calls in flight per upstream process; unlimited when omitted. Set 1 for
   * servers that lose concurrent writes, such as a memory server writing one file.
   */
  max_concurrent_calls: z.number().int().min(1).max(1000).optional(),
  /** Upstream time limit per call, in milliseconds. @default 30000 */
  timeout_ms: z.number().int().min(100).max(600_000).default(30_000),
});

export const grantSchema = z.strictObject({
  id: id.optional(),
  connection: id.optional(),
  actions: z.array(z.string()).min(1),
  resources: z.array(z.string()).min(1),
  mode: z.enum(['agent', 'agent_and_invoker']).default('agent'),
  approval: z.enum(['required', 'none']).default('none'),
});

export const bundleSchema = z.strictObject({
  id,
  description: z.string().optional(),
  grants: z.array(grantSchema).default([]),
  /** Hosts the agent may fetch from: each adds `web.fetch` on `host:<domain>`. */
  domains: z.array(z.string()).default([]),
  /** Tools and skills the agent may call: each adds `tool.call` on `tool:<name>`. */
  tools: z.array(z.string()).default([]),
  /** Prompts of MCP servers the agent may get: each adds `prompt.get` on `prompt:<name>`. */
  prompts: z.array(z.string()).default([]),
  instructions: z.string().optional(),
});

const attachmentObject = z.strictObject({
  bundle: id,
  /** End of a time-boxed attachment (ISO 8601 with a time zone); from then on it grants nothing. */
  until: z.iso.datetime({ offset: true }).optional(),
  /** Agents the attachment applies to; all agents when omitted. */
  agents: z.array(id).optional(),
});

/** A bundle attached to a scope, written as a bare bundle id or an object. */
export const attachmentSchema = z
  .union([id, attachmentObject])
  .transform((value) => (typeof value === 'string' ? { bundle: value } : value));

export const workspaceScopeSchema = z.strictObject({
  bundles: z.array(attachmentSchema).default([]),
  invokers: z.array(memberReference).optional(),
  unattended: z.boolean().default(true),
});

export const dmScopeSchema = z.strictObject({
  enabled: z.boolean().default(true),
  unattended: z.boolean().default(false),
});

export const channelSchema = z.strictObject({
  id,
  name: z.string().optional(),
  visibility: z.enum(['public', 'private', 'shared']),
  inherit: z.boolean().default(true),
  members: z.array(memberReference).optional(),
  invokers: z.array(memberReference).optional(),
  unattended: z.boolean().default(true),
  bundles: z.array(attachmentSchema).default([]),
});

export const guardrailSchema = z.strictObject({
  id,
  description: z.string().optional(),
  actions: z.array(z.string()).min(1),
  resources: z.array(z.string()).min(1),
  /** Scopes the rule applies to; all scopes when omitted. */
  visibility: z.array(z.enum(['workspace', 'public', 'private', 'dm'])).optional(),
});

/**
 * A resource server that accepts Deputy access tokens: an MCP server, an API or the Deputy
 * gateway. Its `uri` is the `resource` or `audience` a runtime names in a token exchange and
 * the `aud` of the access tokens issued for it.
 */
export const audienceSchema = z.strictObject({
  id,
  uri: z.string(),
  description: z.string().optional(),
  /** Grants on this connection decide which scopes an identity may receive. */
  connection: id.optional(),
  /** OAuth scope values: actions, such as `repo.read`. */
  scopes: z.array(z.string()).min(1),
  /** Access token lifetime in seconds, capped by the subject token's expiry. */
  token_lifetime: z.number().int().min(30).max(3600).default(300),
});

/** A trusted external issuer whose identity tokens can be exchanged for Deputy access tokens. */
export const federationSchema = z.strictObject({
  id,
  issuer: z.string(),
  /** The issuer's public keys, inline. Exactly one of `jwks` and `jwks_uri` is set. */
  jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
  /** URL of the issuer's key set (https, or http on loopback). */
  jwks_uri: z.string().optional(),
  /** The `aud` the external token must carry; Deputy's issuer URL when omitted. */
  audience: z.string().optional(),
  algorithms: z.array(z.string()).default(['ES256', 'RS256']),
  /** Claim names to read the agent, channel, invoker and thread from. */
  claims: z
    .strictObject({
      agent: z.string().default('agent'),
      channel: z.string().default('channel'),
      invoker: z.string().default('invoker'),
      thread: z.string().default('thread'),
    })
    .default({ agent: 'agent', channel: 'channel', invoker: 'invoker', thread: 'thread' }),
  /** Agents this issuer may speak for; every agent when omitted. */
  agents: z.array(id).optional(),
});

export const DEFAULT_CASE_INSENSITIVE_TYPES = ['repo', 'host', 'email'];

export const policySchema = z.strictObject({
  version: z.literal(1),
  workspace: z.strictObject({
    id,
    name: z.string().optional(),
    /** Resource types whose ids compare without regard to case. */
    case_insensitive_types: z.array(z.string()).default(DEFAULT_CASE_INSENSITIVE_TYPES),
  }),
  groups: z.array(groupSchema).default([]),
  members: z.array(memberSchema).default([]),
  agents: z.array(agentSchema).default([]),
  connections: z.array(connectionSchema).default([]),
  bundles: z.array(bundleSchema).default([]),
  scopes: z
    .strictObject({
      workspace: workspaceScopeSchema.default({ bundles: [], unattended: true }),
      dms: dmScopeSchema.default({ enabled: true, unattended: false }),
      channels: z.array(channelSchema).default([]),
    })
    .default({
      workspace: { bundles: [], unattended: true },
      dms: { enabled: true, unattended: false },
      channels: [],
    }),
  guardrails: z.array(guardrailSchema).default([]),
  audiences: z.array(audienceSchema).default([]),
  federation: z.array(federationSchema).default([]),
});

export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;
export type Member = z.output<typeof memberSchema>;
export type Group = z.output<typeof groupSchema>;
export type Agent = z.output<typeof agentSchema>;
export type Connection = z.output<typeof connectionSchema>;
export type Route = z.output<typeof routeSchema>;
export type Bundle = z.output<typeof bundleSchema>;
export type Grant = z.output<typeof grantSchema>;
export type Entitlement = z.output<typeof entitlementSchema>;
export type Attachment = z.output<typeof attachmentObject>;
export type Channel = z.output<typeof channelSchema>;
export type Guardrail = z.output<typeof guardrailSchema>;
export type Audience = z.output<typeof audienceSchema>;
export type Federation = z.output<typeof federationSchema>;
