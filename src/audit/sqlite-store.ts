import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely } from 'kysely';

import type { Tables } from '../storage/schema.js';
import type { ChainHead } from './chain.js';
import { GENESIS_HASH } from './event.js';
import type { AuditStore, ChainWrite } from './store.js';

interface Statements {
  selectHead: BetterSqlite3.Statement<[], { seq: number; hash: string }>;
  /** Runs `build` inside BEGIN IMMEDIATE … COMMIT, see {@link SqliteAuditStore.write}. */
  transaction: BetterSqlite3.Transaction<(build: (head: ChainHead) => ChainWrite) => void>;
}

/**
 * The audit store for SQLite. It writes through better-sqlite3 prepared statements, which
 * run synchronously, so one process never interleaves two of its transactions.
 */
export class SqliteAuditStore implements AuditStore {
  private statements: Statements | null = null;

  constructor(
    private readonly db: Kysely<Tables>,
    private readonly sqlite: BetterSqlite3.Database,
  ) {}

  async readHead(): Promise<ChainHead> {
    return await this.withConnection(() => toHead(this.prepare().selectHead.get()));
  }

  async write(build: (head: ChainHead) => ChainWrite): Promise<void> {
    await this.withConnection(() => {
      // better-sqlite3 turns a nested transaction into a savepoint, which would commit the
      // events only when the outer transaction commits.
      if (this.sqlite.inTransaction) {
        throw new Error(
          'the SQLite handle is inside a transaction opened outside kysely: commit it ' +
            'before appending audit events',
        );
      }
      // IMMEDIATE takes the write lock before the head is read, so another process that
      // shares the file waits (busy_timeout) instead of numbering from the same head.
      this.prepare().transaction.immediate(build);
    });
  }

  /**
   * Runs `work` while holding kysely's only connection to the handle, so no kysely
   * transaction is open on it. Statements are prepared again after an error, because the
   * error may come from a dropped table or a closed handle.
   */
  private async withConnection<T>(work: () => T): Promise<T> {
    try {
      return await this.db.connection().execute(async () => work());
    } catch (error) {
      this.statements = null;
      throw error;
    }
  }

  private prepare(): Statements {
    if (this.statements !== null) return this.statements;

    const selectHead = this.sqlite.prepare<[], { seq: number; hash: string }>(
      'select seq, hash from audit_events order by seq desc limit 1',
    );
    const insertEvent = this.sqlite.prepare(
      'insert into audit_events (seq, time, workspace, type, body, hash) values (?, ?, ?, ?, ?, ?)',
    );
    const insertCheckpoint = this.sqlite.prepare(
      'insert into audit_checkpoints (seq, hash, time, key_id, signature) ' +
        'values (@seq, @hash, @time, @key_id, @signature) on conflict (seq) do nothing',
    );

    const transaction = this.sqlite.transaction((build: (head: ChainHead) => ChainWrite) => {
      const { events, checkpoint } = build(toHead(selectHead.get()));
      for (const row of events) {
        insertEvent.run(row.seq, row.time, row.workspace, row.type, row.body, row.hash);
      }
      if (checkpoint !== null) {
        insertCheckpoint.run(checkpoint);
      }
    });

    this.statements = { selectHead, transaction };
    return this.statements;
  }
}

function toHead(row: { seq: number; hash: string } | undefined): ChainHead {
  return row === undefined
    ? { seq: 0, hash: GENESIS_HASH }
    : { seq: Number(row.seq), hash: row.hash };
}
