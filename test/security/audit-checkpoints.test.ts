/**
 * Rewriting the audit log with database write access but without the checkpoint signing key.
 * Recomputing the hash chain forward from a rewritten event keeps every link valid, so only
 * the signed checkpoints show the rewrite, and deleting those must be detected in turn.
 */
import { randomBytes } from 'node:crypto';

import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { canonicalizeEvent } from '../../src/audit/canonical.js';
import { hashEventBody, signCheckpoint } from '../../src/audit/chain.js';
import type { AuditEvent, AuditRecordInput } from '../../src/audit/event.js';
import { AuditLog } from '../../src/audit/log.js';
import { formatVerifyReport, verifyAudit } from '../../src/audit/verify.js';
import { deriveAuditSigningKey } from '../../src/keys/audit-signing-key.js';
import { type TestDatabase, testBackends } from '../support/databases.js';

const EVENTS = 3000;
const CHECKPOINT_EVERY = 100;
const MAX_GAP = 400;

const signingKey = deriveAuditSigningKey(randomBytes(32));
const forgerKey = deriveAuditSigningKey(randomBytes(32));

let database: TestDatabase;

beforeAll(async () => {
  const sqlite = (await testBackends()).find((backend) => backend.name === 'sqlite')!;
  database = await sqlite.open();
});

afterAll(async () => {
  await database.destroy();
});

/** Builds decision record `n`. Every fifth one is a deny, the kind of event a rewrite hides. */
function decision(n: number): AuditRecordInput {
  const denied = n % 5 === 0;
  return {
    type: 'decision',
    workspace: 'acme',
    actor: { type: 'agent', id: 'helper' },
    identity: 'agent:helper',
    scope: 'workspace',
    action: 'repo.read',
    resource: `repo:acme/repo-${n}`,
    decision: denied ? 'deny' : 'allow',
    reason: denied ? 'forbidden_by_guardrail' : 'granted',
    revision: 1,
    decision_id: `d_${n}`,
  };
}

beforeEach(async () => {
  await sql`delete from audit_checkpoints`.execute(database.db);
  await sql`delete from audit_events`.execute(database.db);
  const log = await AuditLog.open(database, {
    signingKey,
    checkpointEvery: CHECKPOINT_EVERY,
    checkpointIntervalMs: 0,
  });
  for (let start = 0; start < EVENTS; start += CHECKPOINT_EVERY) {
    const batch = Array.from({ length: CHECKPOINT_EVERY }, (_, i) => decision(start + i + 1));
    await log.appendMany(batch);
  }
  await log.close();
});

async function verify() {
  const report = await verifyAudit(database, signingKey.publicKey, {
    maxCheckpointGap: MAX_GAP,
  });
  return {
    report,
    summary: formatVerifyReport(report).split('\n')[0],
    problems: report.problems.map((problem) => [problem.seq, problem.kind]),
  };
}

async function checkpointSeqs(): Promise<number[]> {
  const rows = await database.db
    .selectFrom('audit_checkpoints')
    .select('seq')
    .orderBy('seq')
    .execute();
  return rows.map((row) => Number(row.seq));
}

/**
 * Turns the deny at `seq` into an allow, then recomputes `prev` and `hash` of every later event
 * from its stored canonical body, as an attacker with write access to the table would.
 */
async function rewriteFrom(seq: number): Promise<void> {
  const rows = await database.db
    .selectFrom('audit_events')
    .selectAll()
    .where('seq', '>=', seq - 1)
    .orderBy('seq')
    .execute();
  let prev = rows[0]!.hash;

  for (const row of rows.slice(1)) {
    const event = JSON.parse(row.body) as AuditEvent;
    if (Number(row.seq) === seq) {
      expect(event.decision).toBe('deny');
      event.decision = 'allow';
      event.reason = 'granted';
    }
    event.prev = prev;
    const body = canonicalizeEvent(event);
    prev = hashEventBody(body);
    await database.db
      .updateTable('audit_events')
      .set({ body, hash: prev })
      .where('seq', '=', row.seq)
      .execute();
  }
}

async function deleteCheckpointsFrom(seq: number): Promise<void> {
  await database.db.deleteFrom('audit_checkpoints').where('seq', '>=', seq).execute();
}

describe('untouched log', () => {
  it('passes with every checkpoint', async () => {
    const { report, summary, problems } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 30/30 checkpoints valid`);
    expect(problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.lastCheckpointSeq).toBe(EVENTS);
    expect(await checkpointSeqs()).toEqual(Array.from({ length: 30 }, (_, i) => (i + 1) * 100));
  });
});

describe('deleted checkpoints', () => {
  it('reports every checkpoint deleted', async () => {
    await deleteCheckpointsFrom(1);

    const { report, summary, problems } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 0/0 checkpoints valid`);
    expect(problems).toEqual(
      [401, 802, 1203, 1604, 2005, 2406, 2807].map((seq) => [seq, 'missing_checkpoint']),
    );
    expect(report.ok).toBe(false);
    expect(report.lastCheckpointSeq).toBeNull();
  });

  it('reports a deleted stretch in the middle', async () => {
    await database.db
      .deleteFrom('audit_checkpoints')
      .where('seq', '>', 1000)
      .where('seq', '<', 1500)
      .execute();

    const { report, summary, problems } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 26/26 checkpoints valid`);
    expect(problems).toEqual([[1401, 'missing_checkpoint']]);
    expect(report.ok).toBe(false);
  });

  it('allows a gap up to the maximum', async () => {
    await database.db
      .deleteFrom('audit_checkpoints')
      .where('seq', '>', 1000)
      .where('seq', '<', 1400)
      .execute();

    const { report, summary } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 27/27 checkpoints valid`);
    expect(report.ok).toBe(true);
  });
});

describe('rewritten chain', () => {
  it('fails the checkpoints after the rewrite', async () => {
    await rewriteFrom(1550);

    const { report, summary, problems } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 15/30 checkpoints valid`);
    // A checkpoint that fails covers nothing, so the gap check also fires after 1500.
    const rewritten = Array.from({ length: 15 }, (_, i) => [1600 + i * 100, 'rewritten']);
    const gaps = [1901, 2302, 2703].map((seq) => [seq, 'missing_checkpoint']);
    const expected = [...rewritten, ...gaps].sort((a, b) => (a[0] as number) - (b[0] as number));
    expect(problems).toEqual(expected);
    expect(report.ok).toBe(false);
    expect(report.lastCheckpointSeq).toBe(1500);
  });

  it('is detected with its checkpoints deleted', async () => {
    await rewriteFrom(1550);
    await deleteCheckpointsFrom(1550);

    const { report, summary, problems } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 15/15 checkpoints valid`);
    expect(problems).toEqual([
      [1901, 'missing_checkpoint'],
      [2302, 'missing_checkpoint'],
      [2703, 'missing_checkpoint'],
    ]);
    expect(report.ok).toBe(false);
    expect(report.lastCheckpointSeq).toBe(1500);
  });

  it('is detected near the chain start', async () => {
    await rewriteFrom(5);
    await deleteCheckpointsFrom(1);

    const { report, summary, problems } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 0/0 checkpoints valid`);
    expect(problems).toEqual(
      [401, 802, 1203, 1604, 2005, 2406, 2807].map((seq) => [seq, 'missing_checkpoint']),
    );
    expect(report.ok).toBe(false);
  });

  it('rejects checkpoints signed by another key', async () => {
    await rewriteFrom(1550);
    await deleteCheckpointsFrom(1550);
    const heads = await database.db
      .selectFrom('audit_events')
      .select(['seq', 'hash'])
      .where('seq', 'in', [1600, 2000, 2400, 2800, 3000])
      .orderBy('seq')
      .execute();
    const time = new Date().toISOString();
    const forged = heads.map((head) =>
      signCheckpoint({ seq: Number(head.seq), hash: head.hash }, time, forgerKey),
    );
    await database.db.insertInto('audit_checkpoints').values(forged).execute();

    const { report, summary, problems } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 15/20 checkpoints valid`);
    expect(problems).toEqual([
      [1600, 'unknown_key'],
      [1901, 'missing_checkpoint'],
      [2000, 'unknown_key'],
      [2302, 'missing_checkpoint'],
      [2400, 'unknown_key'],
      [2703, 'missing_checkpoint'],
      [2800, 'unknown_key'],
      [3000, 'unknown_key'],
    ]);
    expect(report.ok).toBe(false);
  });

  // The report's lastCheckpointSeq marks the events that only the hash chain protects: a
  // rewrite after the last remaining checkpoint, within the maximum gap, is not detected.
  it('reports the unprotected tail', async () => {
    await rewriteFrom(2950);
    await deleteCheckpointsFrom(2950);

    const { report, summary } = await verify();

    expect(summary).toBe(`${EVENTS}/${EVENTS} events valid, 29/29 checkpoints valid`);
    expect(report.lastCheckpointSeq).toBe(2900);
  });
});
