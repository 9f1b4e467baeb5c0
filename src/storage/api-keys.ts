import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Kysely } from 'kysely';

import type { Tables } from './schema.js';

/** Roles of API keys: everything, decisions only, or reading the audit log only. */
export const ROLES = ['admin', 'pep', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

/** An API key as listed: never its secret. */
export interface ApiKeyInfo {
  readonly id: string;
  readonly role: Role;
  readonly label: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

const KEY_PATTERN = /^dpy_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * API keys: `dpy_<id>_<secret>`. Only the SHA-256 of the secret is stored; the full key is shown
 * once, when created. Verified keys are cached in memory by id, and `refresh()` reloads them.
 */
export class ApiKeyStore {
  readonly #db: Kysely<Tables>;
  #byId = new Map<string, { role: Role; hash: Buffer; revoked: boolean }>();

  constructor(db: Kysely<Tables>) {
    this.#db = db;
  }

  async refresh(): Promise<void> {
    const rows = await this.#db.selectFrom('api_keys').selectAll().execute();
    const byId = new Map<string, { role: Role; hash: Buffer; revoked: boolean }>();
    for (const row of rows) {
      byId.set(row.id, {
        role: row.role as Role,
        hash: Buffer.from(row.secret_hash, 'hex'),
        revoked: row.revoked_at !== null,
      });
    }
    this.#byId = byId;
  }

  async #load(id: string) {
    const row = await this.#db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    const record = {
      role: row.role as Role,
      hash: Buffer.from(row.secret_hash, 'hex'),
      revoked: row.revoked_at !== null,
    };
    this.#byId.set(id, record);
    return record;
  }

  /** Creates a key and returns it with its id. The key is not retrievable afterwards. */
  async create(role: Role, label: string): Promise<{ id: string; key: string }> {
    if (!ROLES.includes(role)) {
      throw new TypeError(`invalid role "${role}": use one of ${ROLES.join(', ')}`);
    }
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    await this.#db
      .insertInto('api_keys')
      .values({
        id,
        role,
        secret_hash: hashSecret(secret),
        label,
        created_at: new Date().toISOString(),
        revoked_at: null,
      })
      .execute();
    await this.refresh();
    return { id, key: `dpy_${id}_${secret}` };
  }

  async revoke(id: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('api_keys')
      .set({ revoked_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    await this.refresh();
    return Number(result.numUpdatedRows) > 0;
  }

  async list(): Promise<ApiKeyInfo[]> {
    const rows = await this.#db.selectFrom('api_keys').selectAll().orderBy('created_at').execute();
    return rows.map((row) => ({
      id: row.id,
      role: row.role as Role,
      label: row.label,
      createdAt: row.created_at,
      revokedAt: row.revoked_at,
    }));
  }

  /**
   * Returns the key's id and role, or `null` for a malformed, unknown or revoked key. A key id
   * missing from the cache (created by another process) is looked up in the database.
   */
  async verify(key: string): Promise<{ id: string; role: Role } | null> {
    const match = KEY_PATTERN.exec(key);
    if (!match) return null;
    const [, id, secret] = match as unknown as [string, string, string];
    const record = this.#byId.get(id) ?? (await this.#load(id));
    if (!record || record.revoked) return null;
    const presented = createHash('sha256').update(secret).digest();
    return timingSafeEqual(presented, record.hash) ? { id, role: record.role } : null;
  }
}
