import { createHash } from 'node:crypto';

import { type Kysely, sql, type Transaction } from 'kysely';

import type { Database } from '../storage/database.js';
import type { AuditCheckpointTable, AuditEventTable, Tables } from '../storage/schema.js';
import type { ChainHead } from './chain.js';
import { GENESIS_HASH } from './event.js';
import { SqliteAuditStore } from './sqlite-store.js';

/** Rows that one transaction adds to the chain. */
export interface ChainWrite {
  events: AuditEventTable[];
  checkpoint: AuditCheckpointTable | null;
}

/** Storage of the audit chain, with one implementation per backend family. */
export interface AuditStore {
  readHead(): Promise<ChainHead>;
  /**
   * Runs one transaction that holds the chain lock: reads the head, passes it to `build`, and
   * inserts what `build` returns. A checkpoint whose seq already has one is skipped.
   */
  write(build: (head: ChainHead) => ChainWrite): Promise<void>;
}

/** Picks the store for the database: prepared statements on SQLite, kysely on PostgreSQL. */
export function createAuditStore(database: Database): AuditStore {
  if (database.kind === 'sqlite') {
    if (database.sqlite === undefined) {
      throw new TypeError('a SQLite database must expose its raw handle as database.sqlite');
    }
    return new SqliteAuditStore(database.db, database.sqlite);
  }
  return new PostgresAuditStore(database.db, chainLockKey(database.schema));
}

/** First key of the advisory lock: the ASCII bytes "DPTY". */
const CHAIN_LOCK_CLASS = 0x44505459;

/** Rows per insert statement: 6 parameters each stays far below PostgreSQL's 65535. */
const INSERT_CHUNK_ROWS = 1000;

/**
 * Second key of the advisory lock, from the schema name, so Deputy instances that share a
 * PostgreSQL database but not a schema do not wait for each other.
 */
function chainLockKey(schema: string | undefined): number {
  const digest = createHash('sha256')
    .update(`deputy audit ${schema ?? ''}`)
    .digest();
  return digest.readInt32BE(0);
}

/** The audit store for PostgreSQL and PGlite. */
export class PostgresAuditStore implements AuditStore {
  constructor(
    private readonly db: Kysely<Tables>,
    private readonly lockKey: number,
  ) {}

  async readHead(): Promise<ChainHead> {
    return await selectHead(this.db);
  }

  async write(build: (head: ChainHead) => ChainWrite): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      // Every process appending to this chain takes the same transaction-scoped lock before
      // it reads the head, so two transactions never number events from the same head.
      await sql`select pg_advisory_xact_lock(${CHAIN_LOCK_CLASS}, ${this.lockKey})`.execute(trx);
      const head = await selectHead(trx);

      const { events, checkpoint } = build(head);
      for (let start = 0; start < events.length; start += INSERT_CHUNK_ROWS) {
        const chunk = events.slice(start, start + INSERT_CHUNK_ROWS);
        await trx.insertInto('audit_events').values(chunk).execute();
      }
      if (checkpoint !== null) {
        await trx
          .insertInto('audit_checkpoints')
          .values(checkpoint)
          .onConflict((conflict) => conflict.column('seq').doNothing())
          .execute();
      }
    });
  }
}

async function selectHead(db: Kysely<Tables> | Transaction<Tables>): Promise<ChainHead> {
  const row = await db
    .selectFrom('audit_events')
    .select(['seq', 'hash'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined
    ? { seq: 0, hash: GENESIS_HASH }
    : { seq: Number(row.seq), hash: row.hash };
}
