import { PostgresDialect } from 'kysely';

interface PgliteResult {
  rows: unknown[];
  affectedRows?: number;
}

interface Pglite {
  query(sql: string, params: unknown[]): Promise<PgliteResult>;
  close(): Promise<void>;
}

/**
 * Builds a kysely PostgreSQL dialect on PGlite. PGlite has one session, so the pool hands out
 * that session to one caller at a time: a transaction never interleaves with another query.
 */
export async function createPgliteDialect(dataDir?: string): Promise<PostgresDialect> {
  const moduleName = '@electric-sql/pglite';
  let PGlite: new (dataDir?: string) => Pglite;
  try {
    ({ PGlite } = (await import(moduleName)) as { PGlite: typeof PGlite });
  } catch (error) {
    throw new Error('pglite: storage needs the @electric-sql/pglite package; run npm install', {
      cause: error,
    });
  }
  const database = new PGlite(dataDir);
  let queue: Promise<void> = Promise.resolve();

  const client = {
    async query(text: string, params: unknown[]) {
      const result = await database.query(text, params);
      const command = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? 'SELECT';
      return { command, rowCount: result.affectedRows ?? result.rows.length, rows: result.rows };
    },
    release() {},
  };

  const pool = {
    async connect() {
      let release!: () => void;
      const previous = queue;
      queue = new Promise<void>((resolve) => (release = resolve));
      await previous;
      return { ...client, release };
    },
    async end() {
      await database.close();
    },
  };
  return new PostgresDialect({ pool: pool as never });
}
