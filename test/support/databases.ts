import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';

import { type Database, openDatabase } from '../../src/storage/database.js';

/**
 * The PostgreSQL server the storage suites use: `DEPUTY_TEST_POSTGRES_URL`, or the local
 * default when it accepts connections. Set `DEPUTY_TEST_POSTGRES_URL=off` to skip it.
 */
const postgresUrl =
  process.env.DEPUTY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function postgresReachable(): Promise<boolean> {
  if (postgresUrl === 'off') return false;
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface TestBackend {
  name: 'sqlite' | 'postgres' | 'pglite';
  /** Opens a fresh, empty, migrated database. */
  open(): Promise<TestDatabase>;
}

export interface TestDatabase extends Database {
  /** The location string, so a second handle (a restart) can open the same data. */
  location: string;
  /** Closes and deletes the database. */
  destroy(): Promise<void>;
}

/**
 * Storage backends to run a suite on: SQLite and PGlite always, PostgreSQL when reachable.
 */
export async function testBackends(): Promise<TestBackend[]> {
  const backends: TestBackend[] = [
    {
      name: 'sqlite',
      async open() {
        const dir = mkdtempSync(join(tmpdir(), 'deputy-test-'));
        const location = join(dir, 'deputy.db');
        const database = await openDatabase(location);
        return {
          ...database,
          location,
          async destroy() {
            await database.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      name: 'pglite',
      async open() {
        const dir = mkdtempSync(join(tmpdir(), 'deputy-pglite-'));
        const location = `pglite:${dir}`;
        const database = await openDatabase(location);
        return {
          ...database,
          location,
          async destroy() {
            await database.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      },
    },
  ];
  if (await postgresReachable()) {
    backends.push({
      name: 'postgres',
      async open() {
        const schema = `deputy_test_${randomBytes(6).toString('hex')}`;
        const url = new URL(postgresUrl);
        url.searchParams.set('schema', schema);
        const location = url.toString();
        const database = await openDatabase(location);
        return {
          ...database,
          location,
          async destroy() {
            await database.close();
            const client = new pg.Client({ connectionString: postgresUrl });
            await client.connect();
            await client.query(`drop schema if exists ${schema} cascade`);
            await client.end();
          },
        };
      },
    });
  }
  return backends;
}
