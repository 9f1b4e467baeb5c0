import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { normalizeAuditRecord, type StoredAuditEvent } from '../../src/audit/event.js';
import { exportAudit } from '../../src/audit/export.js';
import { OCSF_VERSION, toOcsf } from '../../src/audit/ocsf.js';
import { readAuditEvents } from '../../src/audit/read.js';
import { type TestDatabase, testBackends } from '../support/databases.js';
import { openLog } from './fixtures.js';
import { decisionRecord } from './records.js';

const backends = await testBackends();

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const collected: string[] = [];
  for await (const line of lines) collected.push(line);
  return collected;
}

describe.each(backends.map((backend) => [backend.name, backend] as const))(
  '%s',
  (_name, backend) => {
    let database: TestDatabase;

    beforeAll(async () => {
      database = await backend.open();
      const log = await openLog(database);
      await log.appendMany(
        Array.from({ length: 9 }, (_, i) => decisionRecord(i, i < 6 ? 'a' : 'b')),
      );
      await log.append({
        type: 'key.create',
        workspace: null,
        actor: { type: 'member', id: 'alice' },
        detail: { key: 'key_1' },
      });
      await log.close();
    });

    afterAll(async () => {
      await database.destroy();
    });

    it('exports jsonl with hashes', async () => {
      const lines = await collect(exportAudit(database, { format: 'jsonl', pageSize: 3 }));
      const { events } = await readAuditEvents(database, { limit: 100 });

      expect(lines).toHaveLength(10);
      expect(lines.map((line) => JSON.parse(line) as StoredAuditEvent)).toEqual(events);
      expect(lines.every((line) => !line.includes('\n'))).toBe(true);
    });

    it('filters the export by workspace and seq', async () => {
      const lines = await collect(
        exportAudit(database, { format: 'jsonl', workspace: 'a', afterSeq: 2, pageSize: 2 }),
      );
      const seqs = lines.map((line) => (JSON.parse(line) as StoredAuditEvent).seq);

      expect(seqs).toEqual([3, 4, 5, 6]);
    });

    it('exports OCSF events', async () => {
      const lines = await collect(exportAudit(database, { format: 'ocsf' }));
      const first = JSON.parse(lines[0]!) as Record<string, any>;
      const [event] = (await readAuditEvents(database, { limit: 1 })).events;

      expect(lines).toHaveLength(10);
      expect(first).toEqual(toOcsf(event!));
      expect(first.class_uid).toBe(6003);
      expect(first.category_uid).toBe(6);
      expect(first.time).toBe(Date.parse(event!.time));
      expect(first.metadata).toMatchObject({
        product: { name: 'Deputy' },
        uid: '1',
        version: OCSF_VERSION,
        tenant_uid: 'a',
      });
    });

    it('rejects an unknown export format', async () => {
      const lines = exportAudit(database, { format: 'csv' as 'jsonl' });

      await expect(collect(lines)).rejects.toThrow(TypeError);
    });
  },
);

describe('toOcsf', () => {
  const base: StoredAuditEvent = {
    ...normalizeAuditRecord(decisionRecord(0)),
    seq: 7,
    time: '2025-01-02T03:04:05.678Z',
    prev: '0'.repeat(64),
    hash: 'a'.repeat(64),
  };

  it('maps a denied decision', () => {
    const ocsf = toOcsf(base);

    expect(ocsf).toMatchObject({
      class_uid: 6003,
      category_uid: 6,
      activity_id: 99,
      activity_name: 'decision',
      type_uid: 600399,
      time: 1735787045678,
      status_id: 2,
      status: 'Failure',
      status_detail: 'no_grant',
      actor: {
        user: { uid: 'agent-0', type: 'agent', type_id: 99 },
        authorizations: [{ decision: 'denied' }],
      },
      api: { operation: 'slack:chat.postMessage', request: { uid: 'r_0' } },
      resources: [
        { uid: 'channel:C0', type: 'resource' },
        { uid: 'slack', type: 'connection' },
      ],
      metadata: { uid: '7', event_code: 'decision', correlation_uid: 'r_0' },
    });
    expect(ocsf.unmapped).toMatchObject({
      identity: 'alice',
      invoker: 'bob',
      scope: 'channel:C0',
      bundle: 'slack-basic',
      grant: 'post',
      revision: 3,
      decision_id: 'd_0',
      prev: '0'.repeat(64),
      hash: 'a'.repeat(64),
    });
  });

  it('maps an allowed decision to success', () => {
    const ocsf = toOcsf({ ...base, decision: 'allow', reason: null });

    expect(ocsf.status_id).toBe(1);
    expect(ocsf).not.toHaveProperty('status_detail');
    expect(ocsf.actor).toEqual({
      user: { uid: 'agent-0', type: 'agent', type_id: 99 },
      authorizations: [{ decision: 'allowed' }],
    });
  });

  it.each([
    ['key.create', 1],
    ['secret.set', 3],
    ['policy.apply', 3],
    ['key.revoke', 4],
    ['connection.test', 99],
  ])('maps %s to activity %i', (type, activityId) => {
    const ocsf = toOcsf({ ...base, type, decision: null });

    expect(ocsf.activity_id).toBe(activityId);
    expect(ocsf.type_uid).toBe(600300 + activityId);
  });

  it('marks failure events as failed', () => {
    expect(toOcsf({ ...base, type: 'auth.failure', decision: null }).status_id).toBe(2);
  });

  it('omits absent fields', () => {
    const ocsf = toOcsf({
      ...base,
      workspace: null,
      resource: null,
      connection: null,
      request_id: null,
      identity: null,
    });

    expect(ocsf.resources).toEqual([]);
    expect(ocsf.metadata).not.toHaveProperty('tenant_uid');
    expect(ocsf.api).toEqual({ operation: 'slack:chat.postMessage' });
    expect(ocsf.unmapped).not.toHaveProperty('identity');
  });
});
