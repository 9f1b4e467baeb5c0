/**
 * What the gateway records: one `tool.call` event per call, linked to its decision. No event
 * or response contains a secret, and 20 calls in flight at once are recorded like single ones.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { verifyAudit } from '../../src/audit/verify.js';
import {
  auditEventsAfter,
  CHAIN_FIELDS,
  connect,
  type GatewayTestEnvironment,
  lastAuditSeq,
  rejectionOf,
  startGatewayEnvironment,
  textOf,
  tokenFor,
  waitForAuditEvents,
} from './support.js';

let environment: GatewayTestEnvironment;
let handbook: string;

beforeAll(async () => {
  environment = await startGatewayEnvironment();
  handbook = join(environment.filesDir, 'handbook.md');
});

afterAll(async () => {
  vi.restoreAllMocks();
  await environment?.close();
});

/**
 * Hex SHA-256 of `{"path": path}`. For an object with one string member, JSON.stringify gives
 * the RFC 8785 canonical form that the gateway hashes.
 */
function pathArgumentsHash(path: string): string {
  return createHash('sha256').update(JSON.stringify({ path })).digest('hex');
}

describe('tool.call event', () => {
  it('records an allowed call', async () => {
    const client = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });
    const after = await lastAuditSeq(environment);

    await client.callTool({ name: 'files__read_text_file', arguments: { path: handbook } });

    const events = await waitForAuditEvents(environment, after, 2);
    expect(events.map((event) => event.type)).toEqual(['decision', 'tool.call']);
    const [decision, call] = events;
    expect(decision).toEqual({
      ...CHAIN_FIELDS,
      type: 'decision',
      workspace: 'acme',
      actor: { type: 'agent', id: 'helper' },
      identity: 'agent:helper',
      invoker: 'U01ALICE',
      scope: 'channel:C02ENG',
      action: 'tool.call',
      resource: 'tool:files/read_text_file',
      decision: 'allow',
      reason: 'granted',
      bundle: 'engineering',
      grant: 'engineering#tool:files/**',
      connection: null,
      revision: 1,
      decision_id: expect.any(String),
      request_id: expect.any(String),
      detail: null,
    });
    expect(call).toEqual({
      ...CHAIN_FIELDS,
      type: 'tool.call',
      workspace: 'acme',
      actor: { type: 'agent', id: 'helper' },
      identity: 'agent:helper',
      invoker: 'U01ALICE',
      scope: 'channel:C02ENG',
      action: 'tool.call',
      resource: 'tool:files/read_text_file',
      decision: 'allow',
      reason: 'granted',
      bundle: 'engineering',
      grant: 'engineering#tool:files/**',
      connection: 'files',
      revision: 1,
      decision_id: decision!.decision_id,
      request_id: decision!.request_id,
      detail: {
        tool: 'files__read_text_file',
        outcome: 'ok',
        arguments_sha256: pathArgumentsHash(handbook),
        latency_ms: expect.any(Number),
      },
    });
    expect(call!.detail!.latency_ms).toBeGreaterThan(0);
  });

  it('records a guardrail denial', async () => {
    const client = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });
    const after = await lastAuditSeq(environment);

    await rejectionOf(
      client.callTool({ name: 'memory__delete_entities', arguments: { entityNames: ['x'] } }),
    );

    const events = await waitForAuditEvents(environment, after, 2);
    expect(events.map((event) => event.type)).toEqual(['decision', 'tool.call']);
    const [decision, call] = events;
    expect(decision!.detail).toEqual({ guardrail: 'no-memory-deletes' });
    expect(call).toMatchObject({
      resource: 'tool:memory/delete_entities',
      connection: 'memory',
      decision: 'deny',
      reason: 'forbidden_by_guardrail',
      decision_id: decision!.decision_id,
    });
    expect(call!.detail).toEqual({
      tool: 'memory__delete_entities',
      outcome: 'denied',
      arguments_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      latency_ms: expect.any(Number),
    });
  });

  it('records an unknown tool without a decision', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });
    const after = await lastAuditSeq(environment);

    await client.callTool({ name: 'files__no_such_tool', arguments: { path: handbook } });

    const events = await waitForAuditEvents(environment, after, 1);
    expect(events).toEqual([
      {
        ...CHAIN_FIELDS,
        type: 'tool.call',
        workspace: 'acme',
        actor: { type: 'agent', id: 'helper' },
        identity: 'agent:helper',
        invoker: null,
        scope: 'channel:C01GENERAL',
        action: 'tool.call',
        resource: null,
        decision: 'deny',
        reason: 'unknown_tool',
        bundle: null,
        grant: null,
        connection: null,
        revision: null,
        decision_id: null,
        request_id: expect.any(String),
        detail: {
          tool: 'files__no_such_tool',
          outcome: 'unknown_tool',
          arguments_sha256: pathArgumentsHash(handbook),
          latency_ms: expect.any(Number),
        },
      },
    ]);
  });
});

describe('secrets', () => {
  it('appear in no event or response', async () => {
    const after = await lastAuditSeq(environment);
    // Every response body is recorded except the standalone SSE streams (GET /mcp), which stay
    // open until the client closes and carry no tool results.
    const responses: Promise<string>[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      const response = await realFetch(input, init);
      if (init?.method === 'GET' && String(input).endsWith('/mcp')) return response;
      const headers = JSON.stringify([...response.headers]);
      const body = response.clone().text();
      responses.push(body.then((text) => `${headers}\n${text}`));
      return response;
    });

    const sales = { channel: 'C05SALES', invoker: 'U04DAVE' };
    const salesClient = await connect(environment, sales);
    const data = await connect(environment, { channel: 'C03DATA' });
    await salesClient.callTool({ name: 'files__read_text_file', arguments: { path: handbook } });
    await salesClient.callTool({
      name: 'files__read_text_file',
      arguments: { path: '/etc/passwd' },
    });
    if (environment.acme.warehouse.ok) {
      await data.callTool({ name: 'warehouse__query', arguments: { sql: 'select 1' } });
      await rejectionOf(
        data.callTool({
          name: 'warehouse__query',
          arguments: { sql: "select current_setting('no.such.setting')" },
        }),
      );
    }
    // One request through the egress proxy, so the CRM receives its API key and the test
    // learns it.
    const account = await fetch(`${environment.acme.url}/proxy/crm/api/accounts/globex`, {
      headers: { authorization: `Bearer ${await tokenFor(environment, sales)}` },
    });
    expect(account.status).toBe(200);
    const crmKey = environment.acme.crm.received.at(-1)!.headers['x-api-key'] as string;
    await Promise.all(environment.clients.splice(0).map((client) => client.close()));
    vi.restoreAllMocks();

    const secrets: string[] = ['PGPASSWORD=', environment.credentials.clientSecret, crmKey];
    if (environment.acme.warehouse.ok) secrets.push(environment.acme.warehouse.password);
    const calls = environment.acme.warehouse.ok ? 4 : 2;
    await waitForAuditEvents(environment, after, calls, 'tool.call');
    const events = JSON.stringify(await auditEventsAfter(environment));
    const bodies = await Promise.all(responses);
    expect(crmKey).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(bodies.some((body) => body.includes('# Acme handbook'))).toBe(true);
    expect(bodies.some((body) => body.includes('Globex Corporation'))).toBe(true);
    for (const secret of secrets) {
      expect(events).not.toContain(secret);
      for (const body of bodies) expect(body).not.toContain(secret);
    }
  });
});

describe('20 calls in flight', () => {
  for (const revision of ['legacy', 'modern'] as const) {
    it(`all succeed on the ${revision} revision`, async () => {
      const client = await connect(environment, { channel: 'C02ENG', invoker: 'U02BOB' }, revision);
      const after = await lastAuditSeq(environment);

      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          client.callTool({ name: 'files__read_text_file', arguments: { path: handbook } }),
        ),
      );

      for (const result of results) {
        expect(result.isError).toBeUndefined();
        expect(textOf(result)).toMatch(/^# Acme handbook\n/);
      }
      const events = await waitForAuditEvents(environment, after, 20, 'tool.call');
      const calls = events.filter((event) => event.type === 'tool.call');
      const decisions = events.filter((event) => event.type === 'decision');
      expect(events).toHaveLength(40);
      expect(calls).toHaveLength(20);
      expect(decisions).toHaveLength(20);
      expect(calls.map((event) => event.detail!.outcome)).toEqual(Array(20).fill('ok'));
      expect(calls.map((event) => event.invoker)).toEqual(Array(20).fill('U02BOB'));
      expect(new Set(calls.map((event) => event.request_id)).size).toBe(20);
      expect(new Set(calls.map((event) => event.decision_id))).toEqual(
        new Set(decisions.map((event) => event.decision_id)),
      );
      const report = await verifyAudit(
        environment.acme.deputy.database,
        environment.acme.deputy.auditPublicKey,
      );
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
    });
  }
});
