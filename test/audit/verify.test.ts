import { randomBytes, sign } from 'node:crypto';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { chainRecords, checkpointPayload } from '../../src/audit/chain.js';
import { GENESIS_HASH, normalizeAuditRecord } from '../../src/audit/event.js';
import { formatVerifyReport, verifyAudit } from '../../src/audit/verify.js';
import { deriveAuditSigningKey } from '../../src/keys/audit-signing-key.js';
import { type TestDatabase, testBackends } from '../support/databases.js';
import { checkpointRows, eventRows, execute, openLog, signingKey } from './fixtures.js';
import { decisionRecord } from './records.js';

const backends = await testBackends();
const otherKey = deriveAuditSigningKey(randomBytes(32));

/** Builds a well-formed event row that links to `prevHash`, as a forger would. */
function forgeRow(seq: number, prevHash: string) {
  const record = normalizeAuditRecord(decisionRecord(999));
  const time = new Date().toISOString();
  return chainRecords([{ record, time }], { seq: seq - 1, hash: prevHash }).rows[0]!;
}

describe.each(backends.map((backend) => [backend.name, backend] as const))(
  '%s',
  (_name, backend) => {
    let database: TestDatabase;

    /** Verifies with the test key and returns the report text and problems as [seq, kind]. */
    async function verify(options: { pageSize?: number; maxProblems?: number } = {}) {
      const report = await verifyAudit(database, signingKey.publicKey, options);
      const problems = report.problems.map((problem) => [problem.seq, problem.kind]);
      return {
        report,
        text: formatVerifyReport(report),
        summary: formatVerifyReport(report).split('\n')[0],
        problems,
      };
    }

    beforeAll(async () => {
      database = await backend.open();
    });

    afterAll(async () => {
      await database.destroy();
    });

    beforeEach(async () => {
      // Each test starts from the same 60 events, appended in batches of 10 so that
      // checkpoints sit at seq 10, 20, …, 60. Reusing one database keeps PGlite tests fast.
      await execute(database, 'delete from audit_checkpoints');
      await execute(database, 'delete from audit_events');
      const log = await openLog(database, { checkpointEvery: 10 });
      for (let batch = 0; batch < 6; batch++) {
        await log.appendMany(Array.from({ length: 10 }, (_, i) => decisionRecord(batch * 10 + i)));
      }
      await log.close();
    });

    it('reports an intact chain as valid', async () => {
      const { report, text, problems } = await verify();

      expect(text).toBe('60/60 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.lastCheckpointSeq).toBe(60);
      expect((await checkpointRows(database)).map((row) => row.seq)).toEqual([
        10, 20, 30, 40, 50, 60,
      ]);
    });

    it('gives the same result with small pages', async () => {
      const { text } = await verify({ pageSize: 7 });

      expect(text).toBe('60/60 events valid, 6/6 checkpoints valid');
    });

    it('detects a modified body', async () => {
      await execute(
        database,
        `update audit_events set body = replace(body, '"decision":"allow"', '"decision":"deny"') ` +
          'where seq = 25',
      );

      const { summary, problems, report } = await verify();

      expect(summary).toBe('59/60 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([[25, 'modified']]);
      expect(report.ok).toBe(false);
    });

    it('detects a modified last event', async () => {
      await execute(
        database,
        `update audit_events set body = replace(body, '"reason":null', '"reason":"x"') ` +
          `where seq = 60`,
      );
      await execute(
        database,
        `update audit_events set body = replace(body, '"bundle":"slack-basic"', '"bundle":"x"') ` +
          'where seq = 60',
      );

      const { summary, problems } = await verify();

      expect(summary).toBe('59/60 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([[60, 'modified']]);
    });

    it('detects a changed hash column', async () => {
      await execute(database, `update audit_events set hash = '${'f'.repeat(64)}' where seq = 25`);

      const { summary, problems } = await verify();

      expect(summary).toBe('59/60 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([[25, 'hash_mismatch']]);
    });

    it('detects a changed hash on the last event', async () => {
      await execute(database, `update audit_events set hash = '${'f'.repeat(64)}' where seq = 60`);

      const { summary, problems } = await verify();

      expect(summary).toBe('59/60 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([[60, 'hash_mismatch']]);
    });

    it('detects an indexed column that disagrees with the body', async () => {
      await execute(database, `update audit_events set workspace = 'other' where seq = 12`);
      await execute(database, `update audit_events set type = 'admin.change' where seq = 13`);

      const { summary, report } = await verify();

      expect(summary).toBe('58/60 events valid, 6/6 checkpoints valid');
      expect(report.problems).toEqual([
        { seq: 12, kind: 'column_mismatch', message: 'the workspace column differs from the body' },
        { seq: 13, kind: 'column_mismatch', message: 'the type column differs from the body' },
      ]);
    });

    it('detects a body that is not JSON', async () => {
      await execute(database, `update audit_events set body = 'not json' where seq = 12`);

      const { summary, problems } = await verify();

      expect(summary).toBe('59/60 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([[12, 'malformed']]);
    });

    it('detects a deleted middle event', async () => {
      await execute(database, 'delete from audit_events where seq = 25');

      const { summary, problems, report } = await verify();

      expect(summary).toBe('58/59 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([[25, 'deleted']]);
      expect(report.problems[0]?.message).toBe('event 25 is missing');
    });

    it('detects a deleted checkpointed event', async () => {
      await execute(database, 'delete from audit_events where seq in (29, 30)');

      const { summary, problems } = await verify();

      expect(summary).toBe('57/58 events valid, 5/6 checkpoints valid');
      expect(problems).toEqual([
        [29, 'deleted'],
        [30, 'deleted'],
      ]);
    });

    it('detects a forged event inserted in the middle', async () => {
      const rows = await eventRows(database);
      // Make room at seq 25 by moving every later event up by one.
      await execute(database, 'update audit_events set seq = -seq - 1 where seq >= 25');
      await execute(database, 'update audit_events set seq = -seq where seq < 0');
      await database.db.insertInto('audit_events').values(forgeRow(25, rows[23]!.hash)).execute();

      const { summary, problems } = await verify();

      expect(summary).toBe('24/61 events valid, 2/6 checkpoints valid');
      expect(problems[0]).toEqual([25, 'inserted']);
      expect(problems).toContainEqual([26, 'reordered']);
      expect(problems).toContainEqual([30, 'rewritten']);
    });

    it('detects a forged event appended with a wrong link', async () => {
      await database.db.insertInto('audit_events').values(forgeRow(61, GENESIS_HASH)).execute();

      const { summary, problems } = await verify();

      expect(summary).toBe('60/61 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([[61, 'broken_link']]);
    });

    it('detects two events with swapped seq', async () => {
      await execute(database, 'update audit_events set seq = -1 where seq = 21');
      await execute(database, 'update audit_events set seq = 21 where seq = 41');
      await execute(database, 'update audit_events set seq = 41 where seq = -1');

      const { summary, problems } = await verify();

      expect(summary).toBe('58/60 events valid, 6/6 checkpoints valid');
      expect(problems).toEqual([
        [21, 'reordered'],
        [41, 'reordered'],
      ]);
    });

    it('detects a truncated tail after a checkpoint', async () => {
      await execute(database, 'delete from audit_events where seq > 55');

      const { summary, problems, report } = await verify();

      expect(summary).toBe('55/55 events valid, 5/6 checkpoints valid');
      expect(problems).toEqual([[60, 'truncated']]);
      expect(report.lastCheckpointSeq).toBe(50);
    });

    it('detects a tail rewritten after truncation', async () => {
      await execute(database, 'delete from audit_events where seq > 55');
      const log = await openLog(database, { checkpointEvery: 10 });
      await log.appendMany(Array.from({ length: 5 }, (_, i) => decisionRecord(500 + i)));
      await log.close();

      const { summary, problems } = await verify();

      expect(summary).toBe('60/60 events valid, 5/6 checkpoints valid');
      expect(problems).toEqual([[60, 'rewritten']]);
    });

    it('detects a forged checkpoint signature', async () => {
      const [checkpoint] = (await checkpointRows(database)).filter((row) => row.seq === 30);
      const forged = sign(null, checkpointPayload(checkpoint!), otherKey.privateKey);
      await execute(
        database,
        `update audit_checkpoints set signature = '${forged.toString('base64url')}' where seq = 30`,
      );
      await execute(database, `update audit_checkpoints set signature = 'AAAA' where seq = 40`);

      const { summary, problems } = await verify();

      expect(summary).toBe('60/60 events valid, 4/6 checkpoints valid');
      expect(problems).toEqual([
        [30, 'bad_signature'],
        [40, 'bad_signature'],
      ]);
    });

    it('detects a checkpoint with a changed hash', async () => {
      await execute(
        database,
        `update audit_checkpoints set hash = '${'0'.repeat(64)}' where seq = 20`,
      );

      const { summary, problems } = await verify();

      expect(summary).toBe('60/60 events valid, 5/6 checkpoints valid');
      expect(problems).toEqual([
        [20, 'bad_signature'],
        [20, 'rewritten'],
      ]);
    });

    it('reports checkpoints signed by an unknown key', async () => {
      const report = await verifyAudit(database, otherKey.publicKey);

      expect(formatVerifyReport(report).split('\n')[0]).toBe(
        '60/60 events valid, 0/6 checkpoints valid',
      );
      expect(report.problems.map((problem) => problem.kind)).toEqual(Array(6).fill('unknown_key'));
      expect(report.problems[0]?.message).toContain(signingKey.keyId);
    });

    it('accepts any of several public keys', async () => {
      const report = await verifyAudit(database, [otherKey.publicKey, signingKey.publicKey]);

      expect(formatVerifyReport(report)).toBe('60/60 events valid, 6/6 checkpoints valid');
    });

    it('lists problems beyond maxProblems as a count', async () => {
      await execute(database, 'update audit_events set seq = -1 where seq = 21');
      await execute(database, 'update audit_events set seq = 21 where seq = 41');
      await execute(database, 'update audit_events set seq = 41 where seq = -1');

      const { text, report } = await verify({ maxProblems: 1 });

      expect(text).toBe(
        '58/60 events valid, 6/6 checkpoints valid\n' +
          'seq 21: reordered: the event has seq 41 but is stored at 21\n' +
          '1 more problems not listed',
      );
      expect(report.omittedProblems).toBe(1);
    });

    it('reports an empty log as valid', async () => {
      await execute(database, 'delete from audit_checkpoints');
      await execute(database, 'delete from audit_events');

      const { text, report } = await verify();

      expect(text).toBe('0/0 events valid, 0/0 checkpoints valid');
      expect(report.ok).toBe(true);
      expect(report.lastCheckpointSeq).toBeNull();
    });
  },
);
