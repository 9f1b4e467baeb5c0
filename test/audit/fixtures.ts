import { randomBytes } from 'node:crypto';

import { sql } from 'kysely';

import { AuditLog, type AuditLogOptions } from '../../src/audit/log.js';
import { deriveAuditSigningKey } from '../../src/keys/audit-signing-key.js';
import type { Database } from '../../src/storage/database.js';
import type { AuditCheckpointTable, AuditEventTable } from '../../src/storage/schema.js';

/** The signing key every audit test uses, derived from a random master key. */
export const signingKey = deriveAuditSigningKey(randomBytes(32));

export async function openLog(
  database: Database,
  options: Partial<AuditLogOptions> = {},
): Promise<AuditLog> {
  return await AuditLog.open(database, {
    signingKey,
    checkpointIntervalMs: 0,
    ...options,
  });
}

export async function eventRows(database: Database): Promise<AuditEventTable[]> {
  const rows = await database.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
  return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

export async function checkpointRows(database: Database): Promise<AuditCheckpointTable[]> {
  const rows = await database.db
    .selectFrom('audit_checkpoints')
    .selectAll()
    .orderBy('seq')
    .execute();
  return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

/** Runs raw SQL against the database, as an attacker with write access would. */
export async function execute(database: Database, statement: string): Promise<void> {
  await sql.raw(statement).execute(database.db);
}

/** Polls `check` every 10 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
