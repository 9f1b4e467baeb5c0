/**
 * Plain insert loops, the references for the AuditLog figures: rows of the same shape and size
 * as stored decision events, with no hashing, signing or JSON work.
 */
import { randomUUID } from 'node:crypto';

import BetterSqlite3 from 'better-sqlite3';
import type pg from 'pg';

/** Creates a table with the columns and index of `audit_events`. */
function createTableSql(table: string): string[] {
  const index = `${table.replace(/\W/g, '_')}_workspace_seq`;
  return [
    `create table ${table} (seq bigint primary key, time text not null, workspace text, ` +
      'type text not null, body text not null, hash text not null)',
    `create index ${index} on ${table} (workspace, seq)`,
  ];
}

/** Returns a row body about as long as a stored decision event, a 64-digit hash and a time. */
function referenceRow() {
  const time = new Date().toISOString();
  const body = JSON.stringify({
    action: 'repo.read',
    actor: { id: 'helper', type: 'agent' },
    bundle: 'payments-12',
    connection: 'github',
    decision: 'allow',
    decision_id: randomUUID(),
    detail: { caller: '0123456789abcdef' },
    grant: 'read',
    identity: 'agent:helper',
    invoker: 'U01ALICE',
    prev: '0'.repeat(64),
    reason: 'granted',
    request_id: randomUUID(),
    resource: 'repo:acme/payments-api',
    revision: 1,
    scope: 'channel:C0042',
    seq: 1,
    time,
    type: 'decision',
    workspace: 'acme',
  });
  return { body, hash: 'f'.repeat(64), time };
}

/**
 * Inserts rows with a prepared statement, `batchSize` per transaction, into a new SQLite file
 * with the pragmas `openDatabase` sets (WAL, synchronous = FULL). Returns rows per second.
 */
export function sqliteInsertRate(path: string, batchSize: number, durationMs: number): number {
  const sqlite = new BetterSqlite3(path);
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    for (const statement of createTableSql('reference_events')) sqlite.exec(statement);
    const insert = sqlite.prepare(
      'insert into reference_events (seq, time, workspace, type, body, hash) ' +
        'values (?, ?, ?, ?, ?, ?)',
    );
    const { body, hash, time } = referenceRow();
    const insertBatch = sqlite.transaction((first: number) => {
      for (let seq = first; seq < first + batchSize; seq++) {
        insert.run(seq, time, 'acme', 'decision', body, hash);
      }
    });

    const start = performance.now();
    let rows = 0;
    while (performance.now() - start < durationMs) {
      insertBatch(rows + 1);
      rows += batchSize;
    }
    return rows / ((performance.now() - start) / 1000);
  } finally {
    sqlite.close();
  }
}

/**
 * Inserts rows into PostgreSQL on one connection, one `insert … select from unnest(…)` of
 * `batchSize` rows per transaction. Returns rows per second.
 */
export async function postgresInsertRate(
  client: pg.Client,
  schema: string,
  batchSize: number,
  durationMs: number,
): Promise<number> {
  const table = `${schema}.reference_events`;
  for (const statement of createTableSql(table)) await client.query(statement);
  const { body, hash, time } = referenceRow();
  const text =
    `insert into ${table} (seq, time, workspace, type, body, hash) ` +
    'select seq, $2, $3, $4, $5, $6 from unnest($1::bigint[]) as seq';

  const start = performance.now();
  let rows = 0;
  while (performance.now() - start < durationMs) {
    const seqs = Array.from({ length: batchSize }, (_, index) => rows + index + 1);
    await client.query('begin');
    await client.query(text, [seqs, time, 'acme', 'decision', body, hash]);
    await client.query('commit');
    rows += batchSize;
  }
  return rows / ((performance.now() - start) / 1000);
}
