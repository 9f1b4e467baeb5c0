import { chmodSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';

import { migrateToLatest } from './migrations.js';
import { createPgliteDialect } from './pglite.js';
import type { Tables } from './schema.js';

export type DatabaseKind = 'sqlite' | 'postgres' | 'pglite';

/** An open, migrated database. */
export interface Database {
  readonly kind: DatabaseKind;
  readonly db: Kysely<Tables>;
  /** The raw SQLite handle, for the audit log's prepared-statement fast path. */
  readonly sqlite?: BetterSqlite3.Database;
  /** The PostgreSQL schema holding Deputy's tables, when the URL names one. */
  readonly schema?: string;
  close(): Promise<void>;
}

/**
 * Opens and migrates the database named by `location`:
 *
 * - `postgres://…` or `postgresql://…`: PostgreSQL, the multi-node backend;
 * - `pglite:` (in memory) or `pglite:DIR`: PGlite, PostgreSQL compiled to WebAssembly, for tests
 *   on machines without a PostgreSQL server (needs the optional `@electric-sql/pglite` package);
 * - `sqlite:PATH` or a bare file path: embedded SQLite, the default. `:memory:` works too.
 */
export async function openDatabase(
  location: string,
  options: DatabaseOptions = {},
): Promise<Database> {
  const database = await connect(location, options);
  try {
    await migrateToLatest(database.db, database.schema);
  } catch (error) {
    await database.close();
    throw error;
  }
  return database;
}

export interface DatabaseOptions {
  /**
   * SQLite's `synchronous` setting. `full` makes every commit durable on disk with an fsync of
   * the WAL. `normal` saves the fsync, so a commit survives a crash of the process but not of
   * the machine. Ignored for PostgreSQL. @default 'full'
   */
  sqliteSynchronous?: 'full' | 'normal';
}

async function connect(location: string, options: DatabaseOptions): Promise<Database> {
  if (/^postgres(ql)?:\/\//.test(location)) {
    return await connectPostgres(location);
  }
  if (location === 'pglite:' || location.startsWith('pglite:')) {
    const dir = location.slice('pglite:'.length);
    const dialect = await createPgliteDialect(dir === '' ? undefined : dir);
    const db = new Kysely<Tables>({ dialect });
    return { kind: 'pglite', db, close: () => db.destroy() };
  }
  const path = location.startsWith('sqlite:') ? location.slice('sqlite:'.length) : location;
  return connectSqlite(path, options.sqliteSynchronous ?? 'full');
}

async function connectPostgres(location: string): Promise<Database> {
  // A `schema` query parameter keeps Deputy's tables in their own PostgreSQL schema.
  const url = new URL(location);
  const schema = url.searchParams.get('schema');
  url.searchParams.delete('schema');
  if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(
      `invalid schema "${schema}" in the database URL: use lowercase letters, digits and _`,
    );
  }

  // int8 columns (audit sequence numbers) come back as JS numbers; they stay far below 2^53.
  const types = {
    getTypeParser: (oid: number, format?: string) =>
      oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text'),
  };
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: 10,
    types,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  if (schema) {
    await pool.query(`create schema if not exists ${schema}`);
  }
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  return { kind: 'postgres', db, ...(schema ? { schema } : {}), close: () => db.destroy() };
}

function connectSqlite(path: string, synchronous: 'full' | 'normal'): Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(resolve(path)), { recursive: true });
  }
  const sqlite = new BetterSqlite3(path);
  // The database contains sealed secrets and hashed keys, so only the owner may read it. SQLite gives
  // the WAL and shared-memory files the same mode.
  if (path !== ':memory:') chmodSync(path, 0o600);
  sqlite.pragma('journal_mode = WAL');
  // FULL makes every commit durable (fsync of the WAL); the audit log's group commit keeps
  // that affordable. NORMAL, on request, skips the fsync at commit.
  sqlite.pragma(`synchronous = ${synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { kind: 'sqlite', db, sqlite, close: () => db.destroy() };
}
