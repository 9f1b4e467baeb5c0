/**
 * Shared set-up of the egress proxy tests. It starts the acme example on loopback and upstream
 * servers that record what they receive, and sends raw HTTP requests whose request line is
 * exactly what the test writes. It also changes the policy, and installs a guard that blocks
 * any connection or name look-up that would leave this machine.
 */
import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pino from 'pino';
import { expect } from 'vitest';
import type { z } from 'zod';

import { type AcmeEnvironment, startAcme } from '../../examples/acme/environment.js';
import { gatewayToken, type Placement } from '../../examples/acme/runtime.js';
import type { StoredAuditEvent } from '../../src/audit/event.js';
import { maxSeqOf, readAuditEvents } from '../../src/audit/read.js';
import type { Deputy } from '../../src/deputy.js';
import {
  type Bundle,
  bundleSchema,
  type Connection,
  connectionSchema,
  type Policy,
} from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';

// ---------------------------------------------------------------------------------------------
// The network guard
// ---------------------------------------------------------------------------------------------

/** Connections and look-ups the guard blocked. Every test file expects both to stay empty. */
export const blocked = { connections: [] as string[], lookups: [] as string[] };
/** Every name looked up while the guard was on, blocked or not. */
export const lookedUp: string[] = [];

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+|localhost)$/i;
let guardInstalled = false;

/**
 * Makes every outgoing TCP connection of this process to an address outside loopback fail
 * before it is attempted, and every name look-up other than `localhost` fail locally. The
 * proxy runs in this process and uses TCP only, so a bug in its address checks cannot open a
 * connection off this machine.
 */
export function installNetworkGuard(): void {
  if (guardInstalled) return;
  guardInstalled = true;

  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    const options = (Array.isArray(first) ? first[0] : first) as
      { host?: string; port?: number; path?: string } | number | string;
    let host: string | undefined;
    if (typeof options === 'object' && options !== null) {
      host = options.path !== undefined ? undefined : (options.host ?? 'localhost');
    } else if (typeof options === 'number') {
      host = typeof args[1] === 'string' ? args[1] : 'localhost';
    }
    if (host !== undefined && !LOOPBACK.test(host.replace(/^\[(.*)\]$/, '$1'))) {
      blocked.connections.push(host);
      process.nextTick(() => this.destroy(new Error(`test guard: no connection to ${host}`)));
      return this;
    }
    return (connect as (...rest: unknown[]) => net.Socket).apply(this, args);
  } as typeof connect;

  const lookupCallback = dns.lookup;
  const lookupPromise = dns.promises.lookup;
  const notFound = (hostname: string) => {
    blocked.lookups.push(hostname);
    return Object.assign(new Error(`test guard: no look-up of ${hostname}`), {
      code: 'ENOTFOUND',
      hostname,
    });
  };
  const allowed = (hostname: string) =>
    net.isIP(hostname) !== 0 || hostname.toLowerCase() === 'localhost';

  dns.lookup = function guardedLookup(hostname: string, ...rest: unknown[]) {
    lookedUp.push(hostname);
    if (!allowed(hostname)) {
      const callback = rest.at(-1) as (error: Error) => void;
      process.nextTick(() => callback(notFound(hostname)));
      return;
    }
    return (lookupCallback as (...all: unknown[]) => void)(hostname, ...rest);
  } as typeof dns.lookup;
  dns.promises.lookup = async function guardedPromiseLookup(hostname: string, options?: unknown) {
    lookedUp.push(hostname);
    if (!allowed(hostname)) throw notFound(hostname);
    return await (lookupPromise as (name: string, options?: unknown) => Promise<unknown>)(
      hostname,
      options,
    );
  } as typeof dns.promises.lookup;
  // Named imports of node:dns and node:dns/promises in other modules see the guarded functions.
  syncBuiltinESMExports();
}

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

export interface EgressEnvironment {
  readonly acme: AcmeEnvironment;
  readonly deputy: Deputy;
  /** Deputy's port on 127.0.0.1. */
  readonly port: number;
  readonly crmPort: number;
  /** The CRM's API key, as the crm connection reads it. */
  readonly crmKey: string;
  close(): Promise<void>;
}

/** Starts the acme example on free loopback ports, on a fresh database, with the guard on. */
export async function startEgressEnvironment(): Promise<EgressEnvironment> {
  installNetworkGuard();
  const dataDir = mkdtempSync(join(tmpdir(), 'deputy-egress-'));
  const filesDir = join(dataDir, 'files');
  cpSync('examples/acme/files', filesDir, { recursive: true });
  const acme = await startAcme({
    dataDir,
    filesDir,
    logger: pino({ level: 'silent' }),
    port: 0,
    crmPort: 0,
    masterKey: randomBytes(32).toString('base64'),
  });
  const crmKey = await learnCrmKey(acme);
  return {
    acme,
    deputy: acme.deputy,
    port: Number(new URL(acme.url).port),
    crmPort: acme.crm.port,
    crmKey,
    async close() {
      await acme.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Finds the CRM's API key, which startAcme makes and does not return. The CRM returns 200 only
 * for its own key, so the X-Api-Key of a request it accepted is the key. Two direct requests
 * confirm it: one with that value gets 200, one with another value gets 401.
 */
async function learnCrmKey(acme: AcmeEnvironment): Promise<string> {
  const token = await gatewayToken(
    { url: acme.url, clientId: acme.client.id, clientSecret: acme.client.secret },
    { channel: 'C05SALES', invoker: 'U04DAVE' },
  );
  const response = await send(Number(new URL(acme.url).port), {
    target: '/proxy/crm/api/accounts/globex',
    headers: { authorization: `Bearer ${token}` },
  });
  const key = acme.crm.received.at(-1)?.headers['x-api-key'];
  if (response.status !== 200 || typeof key !== 'string') {
    throw new Error(`finding the CRM key failed: ${response.status} ${response.text}`);
  }
  const direct = await send(acme.crm.port, {
    target: '/api/accounts/globex',
    headers: { 'x-api-key': key },
  });
  const wrong = await send(acme.crm.port, {
    target: '/api/accounts/globex',
    headers: { 'x-api-key': `${key}x` },
  });
  if (direct.status !== 200 || wrong.status !== 401)
    throw new Error('the CRM key found was not confirmed by the CRM');
  acme.crm.received.splice(0);
  return key;
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/** Requests a gateway access token (`mcp proxy`) of agent helper in the given place. */
export async function proxyToken(env: EgressEnvironment, placement: Placement): Promise<string> {
  const { acme } = env;
  return await gatewayToken(
    { url: acme.url, clientId: acme.client.id, clientSecret: acme.client.secret },
    placement,
  );
}

/** Posts a form to the token endpoint with the runtime client's credentials. */
export async function tokenEndpoint(
  env: EgressEnvironment,
  form: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { acme } = env;
  const basic = Buffer.from(`${acme.client.id}:${acme.client.secret}`).toString('base64');
  const response = await fetch(`${acme.url}/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Requests an identity token of agent helper, then exchanges it for an access token with `scope`. */
export async function tokensWithScope(
  env: EgressEnvironment,
  placement: Record<string, string>,
  scope: string,
): Promise<{ identity: string; access: string }> {
  const identity = await tokenEndpoint(env, { grant_type: 'client_credentials', ...placement });
  if (identity.status !== 200)
    throw new Error(`identity token request failed: ${JSON.stringify(identity.body)}`);
  const access = await tokenEndpoint(env, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: identity.body.access_token as string,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    resource: `${env.acme.url}/mcp`,
    scope,
  });
  if (access.status !== 200)
    throw new Error(`token exchange failed: ${JSON.stringify(access.body)}`);
  return {
    identity: identity.body.access_token as string,
    access: access.body.access_token as string,
  };
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------------------------

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface RawRequest {
  method?: string;
  /** The request target, sent as written: a path, an absolute URL or `host:port`. */
  target: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}

/** Sends one request to 127.0.0.1:`port` over a fresh connection, the target unchanged. */
export async function send(port: number, raw: RawRequest): Promise<RawResponse> {
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: raw.method ?? 'GET',
        path: raw.target,
        // Without an explicit Content-Length, Node sends a DELETE's or GET's body unframed, and
        // the server then parses it as the start of a second request.
        headers:
          raw.body !== undefined && raw.headers?.['content-length'] === undefined
            ? { ...raw.headers, 'content-length': String(Buffer.byteLength(raw.body)) }
            : (raw.headers ?? {}),
        agent: false,
        setHost: raw.headers?.host === undefined,
      },
      (response: IncomingMessage) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    outgoing.on('error', reject);
    outgoing.end(raw.body);
  });
}

/** Writes `bytes` on a fresh socket to 127.0.0.1:`port` and returns all that comes back. */
export async function sendBytes(port: number, bytes: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.setTimeout(5_000, () => socket.destroy());
    socket.end(bytes);
  });
}

// ---------------------------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------------------------

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Header names and values in the order they arrived, names as sent. */
  rawHeaders: string[];
  body: string;
}

export interface Upstream {
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  readonly received: ReceivedRequest[];
  close(): Promise<void>;
}

export type Responder = (request: ReceivedRequest, response: ServerResponse) => void;

const echo: Responder = (request, response) => {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ ok: true, method: request.method }));
};

/** Starts an HTTP server on 127.0.0.1 that records each request, then calls `respond`. */
export async function startUpstream(respond: Responder = echo): Promise<Upstream> {
  const received: ReceivedRequest[] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const entry: ReceivedRequest = {
      method: request.method ?? '',
      url: request.url ?? '',
      headers: request.headers,
      rawHeaders: request.rawHeaders,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    received.push(entry);
    respond(entry, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Returns a loopback port on which nothing listens: bound, then released. */
export async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------------------------
// Policy and audit
// ---------------------------------------------------------------------------------------------

/**
 * Applies a copy of the current acme policy with `change` made to it, validated as `deputy
 * apply` would. Returns the new revision.
 */
export async function changePolicy(
  deputy: Deputy,
  change: (policy: Policy) => void,
): Promise<number> {
  const current = await deputy.revisions.current('acme');
  if (!current) throw new Error('workspace acme has no policy');
  const draft = structuredClone(current.policy);
  change(draft);
  const parsed = parsePolicy(draft);
  if (!parsed.ok) throw new Error(`invalid test policy: ${JSON.stringify(parsed.issues)}`);
  return await deputy.apply(parsed.policy, current.revision, 'test', {
    actor: { type: 'cli', id: 'test' },
    requestId: null,
  });
}

/**
 * Reads every audit event after `afterSeq`, oldest first. test/api/harness.ts has the same
 * helpers for a Deputy built from source, but this environment's Deputy comes from dist.
 */
export async function auditEventsAfter(
  deputy: Deputy,
  afterSeq: number,
): Promise<StoredAuditEvent[]> {
  const events: StoredAuditEvent[] = [];
  let after = afterSeq;
  for (;;) {
    const page = await readAuditEvents(deputy.database, { afterSeq: after, limit: 1000 });
    events.push(...page.events);
    if (page.nextAfterSeq === null) return events;
    after = page.nextAfterSeq;
  }
}

/** Returns the seq of the newest audit event. */
export async function lastAuditSeq(deputy: Deputy): Promise<number> {
  // Records of earlier requests are written a little later; they belong before the mark.
  await deputy.audit.flush();
  return await maxSeqOf(deputy.database.db, 'audit_events');
}

/** Outcome of one request through the proxy: the response, what upstreams got, what was audited. */
export interface Exchange {
  response: RawResponse;
  /** The JSON body, or null when the body is not JSON. */
  body: Record<string, unknown> | null;
  /** Requests the watched upstreams received meanwhile. */
  reached: ReceivedRequest[];
  /** The audit events of this request: those whose request_id is its X-Request-ID. */
  events: StoredAuditEvent[];
  /** The `http.request` events among them. */
  http: StoredAuditEvent[];
  /** `http.request` events of any request written meanwhile, for responses without an id. */
  anyHttp: StoredAuditEvent[];
}

/** Responses of every exchange, for the checks that no secret was ever sent back. */
export const responses: RawResponse[] = [];

/**
 * Sends `raw` to Deputy and collects what it caused in `upstreams` (the CRM by default) and in
 * the audit log. The proxy writes the `http.request` record after the response, so this polls
 * for the record with the response's X-Request-ID for up to two seconds. It waits 100 ms
 * instead when the response has no id or `audited` is false (a failed authentication).
 */
export async function exchange(
  env: EgressEnvironment,
  raw: RawRequest,
  upstreams: ReadonlyArray<{ received: ReceivedRequest[] | AcmeEnvironment['crm']['received'] }> = [
    env.acme.crm,
  ],
  options: { audited?: boolean } = {},
): Promise<Exchange> {
  const seq = await lastAuditSeq(env.deputy);
  const before = upstreams.map((upstream) => upstream.received.length);
  const response = await send(env.port, raw);
  responses.push(response);

  const requestId = response.headers['x-request-id'];
  let written: StoredAuditEvent[];
  if (requestId === undefined || options.audited === false) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    written = await auditEventsAfter(env.deputy, seq);
  } else {
    const deadline = Date.now() + 2_000;
    for (;;) {
      written = await auditEventsAfter(env.deputy, seq);
      const recorded = written.some(
        (event) => event.type === 'http.request' && event.request_id === requestId,
      );
      if (recorded || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  const events = written.filter(
    (event) => requestId !== undefined && event.request_id === requestId,
  );

  let body: Record<string, unknown> | null = null;
  try {
    body = JSON.parse(response.text) as Record<string, unknown>;
  } catch {
    body = null;
  }
  const reached = upstreams.flatMap((upstream, index) =>
    upstream.received.slice(before[index]).map((entry) => ({ rawHeaders: [], ...entry })),
  );
  return {
    response,
    body,
    reached,
    events,
    http: events.filter((event) => event.type === 'http.request'),
    anyHttp: written.filter((event) => event.type === 'http.request'),
  };
}

/** Fields of every stored audit event that no test predicts. */
export const CHAIN_FIELDS = {
  seq: expect.any(Number),
  time: expect.any(String),
  prev: expect.stringMatching(/^[0-9a-f]{64}$/),
  hash: expect.stringMatching(/^[0-9a-f]{64}$/),
};

/** The caller of an `http.request` record: agent helper in a channel, for an invoker. */
export interface RecordCaller {
  identity: string;
  invoker: string | null;
  scope: string;
}

/** Builds a whole `http.request` audit record for toEqual, with any non-negative latency. */
export function httpRecord(
  caller: RecordCaller,
  fields: {
    decision: 'allow' | 'deny';
    reason: string;
    connection: string | null;
    action: string | null;
    resource: string | null;
    decisionId?: unknown;
    requestId: unknown;
    detail: { method: string; host?: string; path?: string; status: number | null };
    /** The decision's bundle, grant and revision; any string (or null) when omitted. */
    bundle?: string | null;
    grant?: string | null;
    revision?: number | null;
  },
) {
  // A request that reached a decision carries its bundle, grant and revision.
  const decided = fields.decisionId !== undefined && fields.decisionId !== null;
  const nameOrNull = expect.toSatisfy(
    (value: unknown) => value === null || typeof value === 'string',
  );
  const nameWhenDecided = decided ? nameOrNull : null;
  const revisionWhenDecided = decided ? expect.any(Number) : null;
  return {
    ...CHAIN_FIELDS,
    type: 'http.request',
    workspace: 'acme',
    actor: { type: 'agent', id: 'helper' },
    identity: caller.identity,
    invoker: caller.invoker,
    scope: caller.scope,
    action: fields.action,
    resource: fields.resource,
    decision: fields.decision,
    reason: fields.reason,
    bundle: fields.bundle !== undefined ? fields.bundle : nameWhenDecided,
    grant: fields.grant !== undefined ? fields.grant : nameWhenDecided,
    connection: fields.connection,
    revision: fields.revision !== undefined ? fields.revision : revisionWhenDecided,
    decision_id: fields.decisionId ?? null,
    request_id: fields.requestId,
    detail: {
      ...fields.detail,
      latency_ms: expect.toSatisfy((value: unknown) => typeof value === 'number' && value >= 0),
    },
  };
}

/** Parses a connection, filling in the schema's defaults. */
export function connection(input: z.input<typeof connectionSchema>): Connection {
  return connectionSchema.parse(input);
}

/** Parses a bundle, filling in the schema's defaults. */
export function bundle(input: z.input<typeof bundleSchema>): Bundle {
  return bundleSchema.parse(input);
}
