/**
 * Durable audit events: many concurrent appenders on `AuditLog`, on SQLite and on PostgreSQL,
 * each compared with a plain insert loop on the same backend.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';

import type { AuditRecordInput } from '../src/audit/event.js';
import { AuditLog } from '../src/audit/log.js';
import { deriveAuditSigningKey } from '../src/keys/audit-signing-key.js';
import { type Database, openDatabase } from '../src/storage/database.js';
import { postgresInsertRate, sqliteInsertRate } from './audit-reference.js';
import { formatInteger, type Measured, type Row } from './report.js';

export interface AuditOptions {
  /** Appends in flight at any time. */
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Milliseconds of each plain insert loop. */
  referenceMs: number;
}

/** Names of the values of SQLite's `synchronous` pragma. */
const SYNCHRONOUS = ['OFF', 'NORMAL', 'FULL', 'EXTRA'];

/** Rows per transaction of the first plain insert loop. */
const REFERENCE_BATCH = 1000;

interface AppendResult {
  readonly events: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly meanBatch: number;
  readonly largestBatch: number;
  readonly checkpoints: number;
  readonly failedBatches: number;
}

/** AuditLog on SQLite (WAL, synchronous = FULL) in a temporary directory. */
export async function measureSqliteAudit(options: AuditOptions): Promise<Measured> {
  const dir = await mkdtemp(join(tmpdir(), 'deputy-bench-audit-'));
  try {
    const database = await openDatabase(join(dir, 'audit.db'));
    let pragmas: string;
    let result: AppendResult;
    try {
      const sqlite = database.sqlite;
      if (sqlite === undefined) throw new Error('the SQLite database exposes no raw handle');
      const synchronous = SYNCHRONOUS[sqlite.pragma('synchronous', { simple: true }) as number];
      const journal = sqlite.pragma('journal_mode', { simple: true }) as string;
      pragmas = `journal_mode=${journal}, synchronous=${synchronous ?? 'unknown'}`;
      result = await measureAppends(database, options);
    } finally {
      await database.close();
    }

    const sameBatch = Math.max(1, Math.round(result.meanBatch));
    const reference = sqliteInsertRate(join(dir, 'a.db'), REFERENCE_BATCH, options.referenceMs);
    const referenceSame = sqliteInsertRate(join(dir, 'b.db'), sameBatch, options.referenceMs);
    return {
      rows: [...appendRows(result), ...referenceRows(result, reference, referenceSame, sameBatch)],
      notes: [appendNote(result, pragmas)],
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * AuditLog on PostgreSQL in the schema named by the URL's `schema` parameter, dropped before
 * and after. Returns a note and no rows when the server is not reachable.
 */
export async function measurePostgresAudit(url: string, options: AuditOptions): Promise<Measured> {
  const schema = new URL(url).searchParams.get('schema');
  if (schema === null || !/^[a-z_][a-z0-9_]*$/.test(schema)) {
    throw new Error(`the PostgreSQL URL needs a schema parameter of lowercase letters: ${url}`);
  }
  const plainUrl = new URL(url);
  plainUrl.searchParams.delete('schema');
  const client = new pg.Client({
    connectionString: plainUrl.toString(),
    connectionTimeoutMillis: 2000,
  });
  try {
    await client.connect();
  } catch (error) {
    const where = `${plainUrl.host}${plainUrl.pathname}`;
    return {
      rows: [],
      notes: [`Skipped: PostgreSQL at ${where} is not reachable (${(error as Error).message}).`],
    };
  }

  try {
    await client.query(`drop schema if exists ${schema} cascade`);
    const durability = await postgresDurability(client);
    const database = await openDatabase(url);
    let result: AppendResult;
    try {
      result = await measureAppends(database, options);
    } finally {
      await database.close();
    }

    const sameBatch = Math.max(1, Math.round(result.meanBatch));
    const reference = await postgresInsertRate(
      client,
      schema,
      REFERENCE_BATCH,
      options.referenceMs,
    );
    await client.query(`drop table ${schema}.reference_events`);
    const referenceSame = await postgresInsertRate(client, schema, sameBatch, options.referenceMs);
    return {
      rows: [...appendRows(result), ...referenceRows(result, reference, referenceSame, sameBatch)],
      notes: [appendNote(result, durability)],
    };
  } finally {
    await client.query(`drop schema if exists ${schema} cascade`).catch(() => {});
    await client.end();
  }
}

/** Builds a decision event as `Deputy.decide` records it, with new ids. */
function decisionRecord(index: number): AuditRecordInput {
  return {
    type: 'decision',
    workspace: 'acme',
    actor: { type: 'agent', id: 'helper' },
    identity: 'agent:helper',
    invoker: 'U01ALICE',
    scope: `channel:C${String(index % 1000).padStart(4, '0')}`,
    action: 'repo.read',
    resource: 'repo:acme/payments-api',
    decision: 'allow',
    reason: 'granted',
    bundle: 'payments-12',
    grant: 'read',
    connection: 'github',
    revision: 1,
    decision_id: randomUUID(),
    request_id: randomUUID(),
    detail: { caller: '0123456789abcdef' },
  };
}

/**
 * Appends decision events from `concurrency` loops, each awaiting its append before the next,
 * for a warm-up and then `durationMs`. The measured time runs until the last append resolves.
 */
async function measureAppends(database: Database, options: AuditOptions): Promise<AppendResult> {
  const log = await AuditLog.open(database, {
    signingKey: deriveAuditSigningKey(randomBytes(32)),
  });
  try {
    await appendFor(log, options.concurrency, options.warmupMs);
    const before = log.stats();
    const { appended, seconds } = await appendFor(log, options.concurrency, options.durationMs);
    const after = log.stats();

    const batches = after.batches - before.batches;
    return {
      events: appended,
      seconds,
      perSecond: appended / seconds,
      meanBatch: batches === 0 ? 0 : (after.events - before.events) / batches,
      largestBatch: after.largestBatch,
      checkpoints: after.checkpoints - before.checkpoints,
      failedBatches: after.failedBatches,
    };
  } finally {
    await log.close();
  }
}

async function appendFor(log: AuditLog, concurrency: number, durationMs: number) {
  const start = performance.now();
  const end = start + durationMs;
  let appended = 0;

  const loop = async (worker: number) => {
    while (performance.now() < end) {
      await log.append(decisionRecord(worker + appended));
      appended += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, worker) => loop(worker)));
  return { appended, seconds: (performance.now() - start) / 1000 };
}

function appendRows(result: AppendResult): Row[] {
  return [
    {
      metric: 'AuditLog events per second',
      value: result.perSecond,
      unit: 'per second',
      target: { kind: 'at least', value: 50_000 },
    },
    { metric: 'Mean events per transaction', value: result.meanBatch, unit: 'count' },
  ];
}

function referenceRows(
  result: AppendResult,
  reference: number,
  referenceSame: number,
  sameBatch: number,
): Row[] {
  return [
    {
      metric: `Plain inserts per second, ${formatInteger(REFERENCE_BATCH)} per transaction`,
      value: reference,
      unit: 'per second',
    },
    {
      metric: `Plain inserts per second, ${sameBatch} per transaction`,
      value: referenceSame,
      unit: 'per second',
    },
    {
      metric: `AuditLog ÷ plain inserts at ${sameBatch} per transaction`,
      value: (result.perSecond / referenceSame) * 100,
      unit: 'percent',
    },
  ];
}

function appendNote(result: AppendResult, durability: string): string {
  return (
    `Settings: ${durability}. ${formatInteger(result.events)} events in ` +
    `${result.seconds.toFixed(2)} s; largest transaction ${formatInteger(result.largestBatch)} ` +
    `events; ${result.checkpoints} signed checkpoints; ${result.failedBatches} failed ` +
    'transactions. A transaction holds at most the appends in flight, because each loop ' +
    'waits for its append to commit before it appends again.'
  );
}

/** Settings that decide whether a PostgreSQL commit waits for the disk. */
async function postgresDurability(client: pg.Client): Promise<string> {
  const setting = async (name: string) => {
    const { rows } = await client.query<{ value: string }>('select current_setting($1) as value', [
      name,
    ]);
    return rows[0]?.value ?? 'unknown';
  };
  const fsync = await setting('fsync');
  return `fsync=${fsync}, synchronous_commit=${await setting('synchronous_commit')}`;
}
