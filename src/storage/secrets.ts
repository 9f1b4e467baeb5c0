import type { Kysely } from 'kysely';

import { seal, unseal } from '../keys/seal.js';
import type { Tables } from './schema.js';

/**
 * Connection credentials set through the admin API, sealed with AES-256-GCM under the master
 * key. The sealed value is bound to its workspace and connection, so a row copied onto another
 * connection fails to unseal. Nothing here returns a secret except `reveal`, which only the
 * gateway and `test connection` call.
 */
export class SecretStore {
  readonly #db: Kysely<Tables>;
  readonly #masterKey: Uint8Array;

  constructor(db: Kysely<Tables>, masterKey: Uint8Array) {
    this.#db = db;
    this.#masterKey = masterKey;
  }

  async put(workspace: string, connection: string, value: string): Promise<void> {
    const sealed = seal(this.#masterKey, value, `${workspace}/${connection}`);
    const updatedAt = new Date().toISOString();
    await this.#db
      .insertInto('secrets')
      .values({ workspace, connection, sealed, updated_at: updatedAt })
      .onConflict((conflict) =>
        conflict
          .columns(['workspace', 'connection'])
          .doUpdateSet({ sealed, updated_at: updatedAt }),
      )
      .execute();
  }

  async delete(workspace: string, connection: string): Promise<boolean> {
    const result = await this.#db
      .deleteFrom('secrets')
      .where('workspace', '=', workspace)
      .where('connection', '=', connection)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** When the secret was last set, or `null` when none is stored. */
  async updatedAt(workspace: string, connection: string): Promise<string | null> {
    const row = await this.#db
      .selectFrom('secrets')
      .select('updated_at')
      .where('workspace', '=', workspace)
      .where('connection', '=', connection)
      .executeTakeFirst();
    return row?.updated_at ?? null;
  }

  /** Returns the plaintext secret, or `null` when none is stored. */
  async reveal(workspace: string, connection: string): Promise<string | null> {
    const row = await this.#db
      .selectFrom('secrets')
      .select('sealed')
      .where('workspace', '=', workspace)
      .where('connection', '=', connection)
      .executeTakeFirst();
    if (!row) return null;
    return unseal(this.#masterKey, row.sealed, `${workspace}/${connection}`).toString('utf8');
  }
}
