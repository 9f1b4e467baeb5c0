import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { AuditError } from '../../src/audit/errors.js';
import type { AuditEvent } from '../../src/audit/event.js';
import { GENESIS_HASH } from '../../src/audit/event.js';
import { readAuditEvents } from '../../src/audit/read.js';
import { formatVerifyReport, verifyAudit } from '../../src/audit/verify.js';
import { openDatabase } from '../../src/storage/database.js';
import { type TestDatabase, testBackends } from '../support/databases.js';
import { checkpointRows, eventRows, execute, openLog, signingKey, waitFor } from './fixtures.js';
import { decisionRecord } from './records.js';

const backends = await testBackends();

async function rejection(promise: Promise<unknown>): Promise<AuditError> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AuditError);
  return error as AuditError;
}

describe.each(backends.map((backend) => [backend.name, backend] as const))(
  '%s',
  (_name, backend) => {
    let database: TestDatabase;

    // One database per backend, emptied before each test, keeps PGlite tests fast. Tests that
    // close their database open their own.
    beforeAll(async () => {
      database = await backend.open();
    });

    afterAll(async () => {
      await database.destroy();
    });

    beforeEach(async () => {
      await execute(database, 'delete from audit_checkpoints');
      await execute(database, 'delete from audit_events');
    });

    it('joins a deferred append to the next transaction', async () => {
      const log = await openLog(database, { checkpointEvery: 1000 });
      const before = log.stats().batches;

      const deferred = log.appendDeferred(decisionRecord(1), 5_000);
      const now = log.append(decisionRecord(2));
      const [first, second] = await Promise.all([deferred, now]);
      const batches = log.stats().batches - before;
      await log.close();

      expect([first.seq, second.seq]).toEqual([1, 2]);
      expect(batches).toBe(1);
    });

    it('commits a lone deferred append after its delay', async () => {
      const log = await openLog(database, { checkpointEvery: 1000 });

      const event = await log.appendDeferred(decisionRecord(1), 10);
      await log.close();

      expect(event.seq).toBe(1);
      expect((await eventRows(database)).map((row) => row.seq)).toEqual([1]);
    });

    it('numbers concurrent bursts 1..N in one chain', async () => {
      const log = await openLog(database, { checkpointEvery: 100 });
      const returned: AuditEvent[] = [];
      let n = 0;
      for (let burst = 0; burst < 6; burst++) {
        const singles = Array.from({ length: 80 }, () => log.append(decisionRecord(n++)));
        const many = log.appendMany(Array.from({ length: 20 }, () => decisionRecord(n++)));
        returned.push(...(await Promise.all(singles)), ...(await many));
      }
      await log.close();

      const rows = await eventRows(database);
      const checkpoints = await checkpointRows(database);
      const report = await verifyAudit(database, signingKey.publicKey);

      expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
      expect(returned.map((event) => event.seq).sort((a, b) => a - b)).toEqual(
        rows.map((row) => row.seq),
      );
      expect(checkpoints.length).toBeGreaterThanOrEqual(6);
      expect(checkpoints.at(-1)?.seq).toBe(600);
      expect(formatVerifyReport(report)).toBe(
        `600/600 events valid, ${checkpoints.length}/${checkpoints.length} checkpoints valid`,
      );
      expect(report.ok).toBe(true);
      expect(report.lastCheckpointSeq).toBe(600);
    });

    it('links each event to the previous hash', async () => {
      const log = await openLog(database);
      const events = await log.appendMany([decisionRecord(1), decisionRecord(2)]);
      await log.close();

      const rows = await eventRows(database);

      expect(events[0]?.prev).toBe(GENESIS_HASH);
      expect(events[1]?.prev).toBe(rows[0]?.hash);
      expect(JSON.parse(rows[1]!.body)).toEqual(events[1]);
      expect(rows[1]?.workspace).toBe('acme');
      expect(rows[1]?.type).toBe('decision');
      expect(rows[1]?.time).toBe(events[1]?.time);
    });

    it('group-commits a burst into few transactions', async () => {
      const log = await openLog(database, { maxBatch: 64 });
      await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(decisionRecord(i))));
      const stats = log.stats();
      await log.close();

      expect(stats.events).toBe(300);
      expect(stats.largestBatch).toBeLessThanOrEqual(64);
      expect(stats.largestBatch).toBeGreaterThan(1);
      expect(stats.batches).toBeLessThan(300);
      expect(stats.batches).toBeGreaterThanOrEqual(5);
    });

    it('keeps each appendMany call contiguous', async () => {
      const log = await openLog(database, { maxBatch: 7 });
      const calls = Array.from({ length: 12 }, (_, call) =>
        log.appendMany(Array.from({ length: 5 }, (_, i) => decisionRecord(call * 5 + i))),
      );
      const results = await Promise.all(calls);
      await log.close();

      for (const events of results) {
        const seqs = events.map((event) => event.seq);
        expect(seqs).toEqual(Array.from({ length: 5 }, (_, i) => seqs[0]! + i));
      }
    });

    it('commits a lone append without waiting', async () => {
      const log = await openLog(database, { checkpointIntervalMs: 60_000 });
      const started = performance.now();
      const event = await log.append(decisionRecord(1));
      const elapsed = performance.now() - started;
      await log.close();

      expect(event.seq).toBe(1);
      expect(elapsed).toBeLessThan(1000);
    });

    it('uses the injected clock', async () => {
      const now = () => new Date('2025-01-02T03:04:05.678Z');
      const log = await openLog(database, { now });
      const event = await log.append(decisionRecord(1));
      await log.close();

      const checkpoints = await checkpointRows(database);

      expect(event.time).toBe('2025-01-02T03:04:05.678Z');
      expect(checkpoints[0]?.time).toBe('2025-01-02T03:04:05.678Z');
    });

    it('writes a checkpoint every checkpointEvery events', async () => {
      const log = await openLog(database, { checkpointEvery: 10 });
      for (let i = 0; i < 3; i++) {
        await log.appendMany(Array.from({ length: 10 }, (_, j) => decisionRecord(i * 10 + j)));
      }
      await log.append(decisionRecord(99));
      const beforeClose = await checkpointRows(database);
      await log.close();

      const afterClose = await checkpointRows(database);

      expect(beforeClose.map((row) => row.seq)).toEqual([10, 20, 30]);
      expect(afterClose.map((row) => row.seq)).toEqual([10, 20, 30, 31]);
      expect(afterClose.every((row) => row.key_id === signingKey.keyId)).toBe(true);
    });

    it('writes timed checkpoints only after new events', async () => {
      const log = await openLog(database, { checkpointIntervalMs: 20 });
      await log.appendMany([decisionRecord(1), decisionRecord(2), decisionRecord(3)]);

      await waitFor(async () => (await checkpointRows(database)).length === 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const idle = await checkpointRows(database);
      await log.append(decisionRecord(4));
      await waitFor(async () => (await checkpointRows(database)).length === 2);
      await log.close();

      expect(idle.map((row) => row.seq)).toEqual([3]);
      expect((await checkpointRows(database)).map((row) => row.seq)).toEqual([3, 4]);
    });

    it('writes no checkpoint for an empty chain', async () => {
      const log = await openLog(database);
      await log.requestCheckpoint();
      await log.close();

      expect(await checkpointRows(database)).toEqual([]);
    });

    it('rejects appends after close', async () => {
      const log = await openLog(database);
      await log.close();

      const error = await rejection(log.append(decisionRecord(1)));

      expect(error.code).toBe('ERR_AUDIT_CLOSED');
    });

    it('rejects an invalid record with a TypeError', async () => {
      const log = await openLog(database);
      const invalid = { type: 'Bad Type', actor: { type: 'cli', id: 'cli' } } as const;

      await expect(log.append(invalid)).rejects.toThrow(TypeError);
      await log.close();
      expect(await eventRows(database)).toEqual([]);
    });

    it('rejects appends when the write fails and continues after recovery', async () => {
      const log = await openLog(database);
      await log.appendMany(Array.from({ length: 5 }, (_, i) => decisionRecord(i)));

      await execute(database, 'alter table audit_events rename to audit_events_hidden');
      const failed = Array.from({ length: 4 }, (_, i) => log.append(decisionRecord(10 + i)));
      const errors = await Promise.all(failed.map(rejection));
      await execute(database, 'alter table audit_events_hidden rename to audit_events');
      const recovered = await log.append(decisionRecord(20));
      await log.close();

      const report = await verifyAudit(database, signingKey.publicKey);

      expect(errors.map((error) => error.code)).toEqual(Array(4).fill('ERR_AUDIT_WRITE_FAILED'));
      expect(errors[0]?.cause).toBeInstanceOf(Error);
      expect(log.stats().failedBatches).toBeGreaterThanOrEqual(1);
      expect(recovered.seq).toBe(6);
      expect(formatVerifyReport(report)).toBe('6/6 events valid, 1/1 checkpoints valid');
    });

    it('rejects appends when the database is closed', async () => {
      const own = await backend.open();
      const log = await openLog(own);
      await log.append(decisionRecord(1));

      await own.close();
      const errors = await Promise.all(
        [log.append(decisionRecord(2)), log.append(decisionRecord(3))].map(rejection),
      );
      const closeError = await rejection(log.close());

      expect(errors.map((error) => error.code)).toEqual([
        'ERR_AUDIT_WRITE_FAILED',
        'ERR_AUDIT_WRITE_FAILED',
      ]);
      expect(closeError.code).toBe('ERR_AUDIT_WRITE_FAILED');

      // A restart on the same location continues the chain after the committed event.
      const reopened = await openDatabase(own.location);
      const restarted = await openLog(reopened);
      const event = await restarted.append(decisionRecord(4));
      await restarted.close();
      const rows = await eventRows(reopened);
      await reopened.close();
      await own.destroy();

      expect(event.seq).toBe(2);
      expect(event.prev).toBe(rows[0]?.hash);
    });

    it('continues the chain after a restart', async () => {
      const own = await backend.open();
      const first = await openLog(own, { checkpointEvery: 10 });
      await first.appendMany(Array.from({ length: 25 }, (_, i) => decisionRecord(i)));
      await first.close();
      await own.close();

      const reopened = await openDatabase(own.location);
      const second = await openLog(reopened, { checkpointEvery: 10 });
      const events = await second.appendMany(
        Array.from({ length: 5 }, (_, i) => decisionRecord(i)),
      );
      await second.close();
      const report = await verifyAudit(reopened, signingKey.publicKey);
      await reopened.close();
      await own.destroy();

      expect(events.map((event) => event.seq)).toEqual([26, 27, 28, 29, 30]);
      expect(formatVerifyReport(report)).toBe('30/30 events valid, 2/2 checkpoints valid');
    });

    it('keeps one chain for two logs appending concurrently', async () => {
      // PGlite cannot open one directory twice, so both logs share its handle there.
      const other = backend.name === 'pglite' ? database : await openDatabase(database.location);
      const first = await openLog(database, { checkpointEvery: 50 });
      const second = await openLog(other, { checkpointEvery: 50 });

      const appends = [];
      for (let i = 0; i < 200; i++) {
        appends.push(first.append(decisionRecord(i)), second.append(decisionRecord(1000 + i)));
        if (i % 40 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(appends);
      await Promise.all([first.close(), second.close()]);
      if (other !== database) await other.close();

      const rows = await eventRows(database);
      const report = await verifyAudit(database, signingKey.publicKey);

      expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
      expect(report.events).toEqual({ total: 400, valid: 400 });
      expect(report.checkpoints.valid).toBe(report.checkpoints.total);
      expect(report.problems).toEqual([]);
    });

    it('pages through events with readAuditEvents', async () => {
      const log = await openLog(database);
      await log.appendMany(
        Array.from({ length: 7 }, (_, i) => decisionRecord(i, i % 2 ? 'b' : 'a')),
      );
      await log.close();

      const first = await readAuditEvents(database, { workspace: 'a', limit: 2 });
      const second = await readAuditEvents(database, {
        workspace: 'a',
        limit: 2,
        afterSeq: first.nextAfterSeq!,
      });
      const all = await readAuditEvents(database, { limit: 1000 });

      expect(first.events.map((event) => event.seq)).toEqual([1, 3]);
      expect(first.nextAfterSeq).toBe(3);
      expect(second.events.map((event) => event.seq)).toEqual([5, 7]);
      expect(all.events).toHaveLength(7);
      expect(all.nextAfterSeq).toBeNull();
      expect(all.events[0]?.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(all.events[1]?.prev).toBe(all.events[0]?.hash);
    });

    it('rejects an out-of-range read limit', async () => {
      await expect(readAuditEvents(database, { limit: 0 })).rejects.toThrow(TypeError);
      await expect(readAuditEvents(database, { limit: 1001 })).rejects.toThrow(TypeError);
      await expect(readAuditEvents(database, { limit: 5, afterSeq: -1 })).rejects.toThrow(
        TypeError,
      );
    });
  },
);
