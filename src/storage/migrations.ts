import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';

import type { Tables } from './schema.js';

/**
 * Schema migrations, in order. Each runs unchanged on SQLite and PostgreSQL, so column types
 * stick to the portable subset (text, integer, bigint).
 */
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('revisions')
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('summary', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('revisions_pk', ['workspace', 'revision'])
        .execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();

      await db.schema
        .createTable('secrets')
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('connection', 'text', (c) => c.notNull())
        .addColumn('sealed', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('secrets_pk', ['workspace', 'connection'])
        .execute();

      await db.schema
        .createTable('audit_events')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('time', 'text', (c) => c.notNull())
        .addColumn('workspace', 'text')
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('audit_events_workspace_seq')
        .on('audit_events')
        .columns(['workspace', 'seq'])
        .execute();

      await db.schema
        .createTable('audit_checkpoints')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('time', 'text', (c) => c.notNull())
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('signature', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_tokens': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('alg', 'text', (c) => c.notNull())
        .addColumn('public_jwk', 'text', (c) => c.notNull())
        .addColumn('sealed_private', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('retired_at', 'text')
        .addColumn('not_after', 'text')
        .execute();
      // At most one current key per algorithm, so processes that create or rotate keys at the
      // same time cannot both make one current.
      await db.schema
        .createIndex('signing_keys_one_current')
        .on('signing_keys')
        .column('alg')
        .unique()
        .where(sql.ref('retired_at'), 'is', null)
        .execute();

      await db.schema
        .createTable('revoked_tokens')
        .addColumn('jti', 'text', (c) => c.primaryKey())
        .addColumn('exp', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('revoked_tokens_exp')
        .on('revoked_tokens')
        .column('exp')
        .execute();

      await db.schema
        .createTable('principal_revocations')
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('principal_revocations_pk', ['workspace', 'principal'])
        .execute();
    },
  },
  '0003_runtime_clients': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('runtime_clients')
        .addColumn('client_id', 'text', (c) => c.primaryKey())
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('agent', 'text', (c) => c.notNull())
        .addColumn('auth_method', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text')
        .addColumn('jwks', 'text')
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('disabled_at', 'text')
        .execute();

      // Client assertion ids seen until they expire, so an assertion is accepted only once.
      await db.schema
        .createTable('client_assertions')
        .addColumn('jti', 'text', (c) => c.primaryKey())
        .addColumn('exp', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
};

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

/** Brings the schema up to date, and throws with the failing migration's name on error. */
export async function migrateToLatest(db: Kysely<Tables>, schema?: string): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: new StaticMigrationProvider(),
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((result) => result.status === 'Error');
    const name = failed ? failed.migrationName : 'unknown';
    throw new Error(`database migration ${name} failed: ${String(error)}`, { cause: error });
  }
}

/** Returns the highest applied migration name, for `deputy serve` start-up logs. */
export async function schemaVersion(db: Kysely<Tables>): Promise<string | null> {
  const result = await sql<{
    name: string;
  }>`select max(name) as name from kysely_migration`.execute(db);
  return result.rows[0]?.name ?? null;
}
