/**
 * SQL through the warehouse connection: server-postgres on the local PostgreSQL, logged in as
 * the agent's read-only role. Deputy decides the tool call and the database role decides what
 * the SQL may touch. Statements that escape the server's read-only transaction therefore still
 * fail. The tests skip when PostgreSQL at 127.0.0.1:5432 is not reachable.
 */
import { createHash } from 'node:crypto';

import type { Client } from '@modelcontextprotocol/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';

import {
  CHAIN_FIELDS,
  connect,
  DENIED,
  type GatewayTestEnvironment,
  INTERNAL_ERROR,
  lastAuditSeq,
  rejectionOf,
  startGatewayEnvironment,
  textOf,
  waitForAuditEvents,
} from './support.js';

const WAREHOUSE_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/acme_warehouse';

let environment: GatewayTestEnvironment;
let data: Client;

beforeAll(async () => {
  environment = await startGatewayEnvironment();
  if (environment.acme.warehouse.ok) data = await connect(environment, { channel: 'C03DATA' });
});

afterAll(async () => {
  await environment?.close();
});

function skipWithoutWarehouse(context: TestContext): void {
  const { warehouse } = environment.acme;
  if (!warehouse.ok) context.skip(`the warehouse is unavailable: ${warehouse.reason}`);
}

/** Runs `sql` as the PostgreSQL superuser in the warehouse database. */
async function queryAsAdmin(sql: string): Promise<Record<string, unknown>[]> {
  const admin = new pg.Client({ connectionString: WAREHOUSE_ADMIN_URL });
  await admin.connect();
  try {
    return (await admin.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await admin.end();
  }
}

describe('warehouse__query in C03DATA', () => {
  it('counts the orders', async (context) => {
    skipWithoutWarehouse(context);

    const result = await data.callTool({
      name: 'warehouse__query',
      arguments: { sql: 'select count(*) from orders' },
    });

    expect(result.isError).toBe(false);
    expect(JSON.parse(textOf(result))).toEqual([{ count: '4' }]);
  });

  it('fails a CREATE smuggled after COMMIT', async (context) => {
    skipWithoutWarehouse(context);
    const sql = 'COMMIT; CREATE TABLE smuggled (id int)';
    const after = await lastAuditSeq(environment);

    const error = await rejectionOf(
      data.callTool({ name: 'warehouse__query', arguments: { sql } }),
    );

    expect(error.code).toBe(INTERNAL_ERROR);
    expect(error.message).toBe(
      'warehouse__query failed upstream: permission denied for schema public',
    );
    expect(await queryAsAdmin("select to_regclass('public.smuggled') as smuggled")).toEqual([
      { smuggled: null },
    ]);

    const events = await waitForAuditEvents(environment, after, 2);
    expect(events.map((event) => event.type)).toEqual(['decision', 'tool.call']);
    expect(events[1]).toEqual({
      ...CHAIN_FIELDS,
      type: 'tool.call',
      workspace: 'acme',
      actor: { type: 'agent', id: 'helper' },
      identity: 'agent:helper',
      invoker: null,
      scope: 'channel:C03DATA',
      action: 'tool.call',
      resource: 'tool:warehouse/query',
      decision: 'allow',
      reason: 'granted',
      bundle: 'analytics',
      grant: 'analytics#tool:warehouse/query',
      connection: 'warehouse',
      revision: 1,
      decision_id: events[0]!.decision_id,
      request_id: events[0]!.request_id,
      detail: {
        tool: 'warehouse__query',
        outcome: 'upstream_error',
        // JSON.stringify of a one-member object is its RFC 8785 canonical form.
        arguments_sha256: createHash('sha256').update(JSON.stringify({ sql })).digest('hex'),
        arguments: { sql },
        latency_ms: expect.any(Number),
        error: 'permission denied for schema public',
      },
    });
  });

  it('fails a read of finance.payroll', async (context) => {
    skipWithoutWarehouse(context);

    const error = await rejectionOf(
      data.callTool({
        name: 'warehouse__query',
        arguments: { sql: 'select * from finance.payroll' },
      }),
    );

    expect(error.code).toBe(INTERNAL_ERROR);
    expect(error.message).toBe(
      'warehouse__query failed upstream: permission denied for schema finance',
    );
  });
});

describe('warehouse__query in C01GENERAL', () => {
  it('is denied', async (context) => {
    skipWithoutWarehouse(context);
    const general = await connect(environment, { channel: 'C01GENERAL' });

    const error = await rejectionOf(
      general.callTool({ name: 'warehouse__query', arguments: { sql: 'select 1' } }),
    );

    expect(error.code).toBe(DENIED);
    expect(error.message).toBe('Deputy denied warehouse__query: no_matching_grant');
    expect(error.data).toEqual({ reason: 'no_matching_grant', decision_id: expect.any(String) });
  });
});
