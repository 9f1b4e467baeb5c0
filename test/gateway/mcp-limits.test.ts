/**
 * Limits that keep an agent from escaping the audit log or exhausting the gateway: oversized
 * and deeply nested arguments, and memory processes for compartments that cannot use them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  auditEventsAfter,
  connect,
  type GatewayTestEnvironment,
  lastAuditSeq,
  startGatewayEnvironment,
  waitForAuditEvents,
} from './support.js';

let environment: GatewayTestEnvironment;

beforeAll(async () => {
  environment = await startGatewayEnvironment();
});

afterAll(async () => {
  await environment?.close();
});

function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: true };
  for (let level = 0; level < depth; level++) value = { inner: value };
  return value;
}

describe('tool call records', () => {
  it('records a call with 100 KB of arguments', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });
    const before = await lastAuditSeq(environment);
    const query = `big-${'x'.repeat(100_000)}`;

    await client.callTool({ name: 'memory__search_nodes', arguments: { query } });

    const events = await waitForAuditEvents(environment, before, 1, 'tool.call');
    const call = events.find((event) => event.type === 'tool.call')!;
    expect(call.detail!.outcome).toBe('ok');
    expect(call.detail!.arguments_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('records a call with arguments nested 100 deep', async () => {
    const client = await connect(environment, { channel: 'C03DATA', invoker: 'U05ERIN' });
    const before = await lastAuditSeq(environment);

    await client
      .callTool({ name: 'warehouse__query', arguments: { sql: 'select 1', extra: nested(100) } })
      .catch(() => undefined);

    const events = await waitForAuditEvents(environment, before, 1, 'tool.call');
    const call = events.find((event) => event.type === 'tool.call')!;
    expect(call.detail!.arguments_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(call.detail!.arguments)).toContain('[TRUNCATED]');
  });

  it('cuts recorded arguments over 16 KiB', async () => {
    const client = await connect(environment, { channel: 'C03DATA', invoker: 'U05ERIN' });
    const before = await lastAuditSeq(environment);
    const sql = `select 1 /* ${'y'.repeat(70_000)} */`;

    await client.callTool({ name: 'warehouse__query', arguments: { sql } }).catch(() => undefined);

    const events = await waitForAuditEvents(environment, before, 1, 'tool.call');
    const call = events.find((event) => event.type === 'tool.call')!;
    expect(call.detail!.arguments).toBeUndefined();
    expect(call.detail!.arguments_length).toBeGreaterThan(70_000);
    expect((call.detail!.arguments_truncated as string).length).toBe(16_384);
  });

  it('caps the recorded name of an unknown tool', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });
    const before = await lastAuditSeq(environment);

    await client.callTool({ name: `files__${'z'.repeat(70_000)}`, arguments: {} });

    const events = (await auditEventsAfter(environment, before)).filter(
      (event) => event.type === 'tool.call',
    );
    expect(events).toHaveLength(1);
    expect((events[0]!.detail!.tool as string).length).toBe(256);
  });
});

describe('memory compartments', () => {
  it('starts no process for a scope without memory tools', async () => {
    const general = await connect(environment, { channel: 'C01GENERAL' });
    await general.listTools();
    const running = environment.acme.gateway.upstreams.size;

    // #random does not inherit the baseline, so none of the memory tools is granted there.
    const random = await connect(environment, { channel: 'C07RANDOM' });
    const { tools } = await random.listTools();

    expect(tools.filter((tool) => tool.name.startsWith('memory__'))).toEqual([]);
    expect(environment.acme.gateway.upstreams.size).toBe(running);
  });
});
