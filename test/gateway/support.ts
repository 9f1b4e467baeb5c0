/**
 * The acme example environment for the gateway's end-to-end tests: Deputy with its gateway on
 * loopback, the real upstream MCP servers, the CRM and the PostgreSQL warehouse, on a fresh
 * data directory and a private copy of the example files.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Client } from '@modelcontextprotocol/client';
import pino from 'pino';
import { expect } from 'vitest';

import { type AcmeEnvironment, startAcme } from '../../examples/acme/environment.js';
import {
  connectGateway,
  gatewayToken,
  type Placement,
  type RuntimeCredentials,
} from '../../examples/acme/runtime.js';
import type { StoredAuditEvent } from '../../src/audit/event.js';
import { maxSeqOf, readAuditEvents } from '../../src/audit/read.js';

export { TokenRequestError } from '../../examples/acme/runtime.js';
export type { StoredAuditEvent } from '../../src/audit/event.js';
export type { GatewayCaller } from '../../src/gateway/bearer.js';
export { compartmentOf } from '../../src/gateway/mcp.js';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const GITHUB_MCP = 'https://mcp.acme.example/github';

/** JSON-RPC error code of a tool call that Deputy denied. */
export const DENIED = -32001;
/** JSON-RPC error code of an upstream failure. */
export const INTERNAL_ERROR = -32603;

/** Chain fields that every stored audit event has and no test predicts. */
export const CHAIN_FIELDS = {
  seq: expect.any(Number),
  time: expect.any(String),
  prev: expect.stringMatching(/^[0-9a-f]{64}$/),
  hash: expect.stringMatching(/^[0-9a-f]{64}$/),
};

export interface GatewayTestEnvironment {
  acme: AcmeEnvironment;
  /** The private copy of examples/acme/files that the files connection serves. */
  filesDir: string;
  credentials: RuntimeCredentials;
  /** MCP clients opened through `connect`, closed by `close`. */
  clients: Client[];
  close(): Promise<void>;
}

/**
 * Starts the acme environment on free ports, with a fresh data directory, a random master key
 * and its own copy of the example files.
 */
export async function startGatewayEnvironment(): Promise<GatewayTestEnvironment> {
  const dataDir = mkdtempSync(join(tmpdir(), 'deputy-gateway-'));
  const filesDir = join(dataDir, 'files');
  cpSync('examples/acme/files', filesDir, { recursive: true });
  const acme = await startAcme({
    dataDir,
    logger: pino({ level: 'silent' }),
    port: 0,
    crmPort: 0,
    masterKey: randomBytes(32).toString('base64'),
    filesDir,
  });
  const clients: Client[] = [];
  return {
    acme,
    filesDir,
    credentials: { url: acme.url, clientId: acme.client.id, clientSecret: acme.client.secret },
    clients,
    async close() {
      await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
      await acme.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Requests a gateway access token (`mcp proxy`) for `placement`. */
export async function tokenFor(
  environment: GatewayTestEnvironment,
  placement: Placement,
): Promise<string> {
  return await gatewayToken(environment.credentials, placement);
}

/** Requests a gateway token for `placement` and connects an MCP client with it. */
export async function connect(
  environment: GatewayTestEnvironment,
  placement: Placement,
  revision: 'legacy' | 'modern' = 'legacy',
): Promise<Client> {
  const token = await tokenFor(environment, placement);
  const client = await connectGateway(environment.acme.url, token, revision);
  environment.clients.push(client);
  return client;
}

/** Sends a form to the token endpoint as the runtime client and returns the raw reply. */
export async function requestToken(
  environment: GatewayTestEnvironment,
  form: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { clientId, clientSecret } = environment.credentials;
  const basic = Buffer.from(`${clientId}:${clientSecret}`).toString('base64');
  const response = await fetch(`${environment.acme.url}/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Issues an identity token for `placement`, failing the test when the request fails. */
export async function identityToken(
  environment: GatewayTestEnvironment,
  placement: Record<string, string>,
): Promise<string> {
  const reply = await requestToken(environment, {
    grant_type: 'client_credentials',
    ...placement,
  });
  expect(reply.status).toBe(200);
  return reply.body.access_token as string;
}

/** Exchanges an identity token for an access token to `resource` with `scope`. */
export async function exchangedToken(
  environment: GatewayTestEnvironment,
  identity: string,
  resource: string,
  scope: string,
): Promise<string> {
  const reply = await requestToken(environment, {
    grant_type: TOKEN_EXCHANGE,
    subject_token: identity,
    subject_token_type: TOKEN_TYPE_JWT,
    resource,
    scope,
  });
  expect(reply.status).toBe(200);
  return reply.body.access_token as string;
}

/** Awaits `promise` and returns what it rejected with, failing the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** Reads every audit event with a seq above `afterSeq`, in order. */
export async function auditEventsAfter(
  environment: GatewayTestEnvironment,
  afterSeq = 0,
): Promise<StoredAuditEvent[]> {
  const database = environment.acme.deputy.database;
  const events: StoredAuditEvent[] = [];
  let after = afterSeq;
  for (;;) {
    const page = await readAuditEvents(database, { afterSeq: after, limit: 1000 });
    events.push(...page.events);
    if (page.nextAfterSeq === null) return events;
    after = page.nextAfterSeq;
  }
}

/**
 * Reads the audit events after `afterSeq` once at least `count` of them (of `type`, when
 * given) exist, or after 2 s. The gateway records a successful call's outcome without holding
 * back its result, so the `tool.call` event can land just after the client has the result.
 */
export async function waitForAuditEvents(
  environment: GatewayTestEnvironment,
  afterSeq: number,
  count: number,
  type?: string,
): Promise<StoredAuditEvent[]> {
  const deadline = performance.now() + 2000;
  for (;;) {
    const events = await auditEventsAfter(environment, afterSeq);
    const matching = type === undefined ? events : events.filter((event) => event.type === type);
    if (matching.length >= count || performance.now() > deadline) return events;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Returns the seq of the newest audit event, 0 when the log is empty. */
export async function lastAuditSeq(environment: GatewayTestEnvironment): Promise<number> {
  // Outcome events of earlier calls are written a little later; they belong before the mark.
  await environment.acme.deputy.audit.flush();
  return await maxSeqOf(environment.acme.deputy.database.db, 'audit_events');
}

/** Joins the text blocks of a tool result. */
export function textOf(result: unknown): string {
  const content = (result as { content: Array<{ type: string; text?: string }> }).content;
  return content.map((block) => (block.type === 'text' ? block.text : '')).join('');
}
