import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { JSONWebKeySet } from 'jose';
import type { Kysely } from 'kysely';

import type { Tables } from '../storage/schema.js';

/** Authentication methods of a runtime client at the token endpoint. */
export const CLIENT_AUTH_METHODS = [
  'private_key_jwt',
  'client_secret_basic',
  'client_secret_post',
] as const;
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number];

/** A registered runtime client: the service that runs one agent's model. */
export interface RuntimeClient {
  readonly clientId: string;
  readonly workspace: string;
  readonly agent: string;
  readonly authMethod: ClientAuthMethod;
  /** Public keys for `private_key_jwt`; `null` for secret-based clients. */
  readonly jwks: JSONWebKeySet | null;
  readonly label: string;
  readonly createdAt: string;
  readonly disabledAt: string | null;
}

interface StoredClient extends RuntimeClient {
  readonly secretHash: Buffer | null;
}

const hash = (secret: string) => createHash('sha256').update(secret).digest();

/**
 * Runtime clients. A client secret is 32 random bytes, shown once; only its SHA-256 is stored.
 * Clients are cached in memory and `refresh()` reloads them.
 */
export class RuntimeClientStore {
  readonly #db: Kysely<Tables>;
  #byId = new Map<string, StoredClient>();

  constructor(db: Kysely<Tables>) {
    this.#db = db;
  }

  async refresh(): Promise<void> {
    const rows = await this.#db.selectFrom('runtime_clients').selectAll().execute();
    this.#byId = new Map(rows.map((row) => [row.client_id, fromRow(row)]));
  }

  /**
   * Registers a client for an agent. Returns the client and, for secret-based methods, the
   * secret, which is not retrievable afterwards.
   */
  async create(input: {
    workspace: string;
    agent: string;
    authMethod: ClientAuthMethod;
    jwks?: JSONWebKeySet;
    label?: string;
  }): Promise<{ client: RuntimeClient; secret: string | null }> {
    if (input.authMethod === 'private_key_jwt' && !input.jwks?.keys?.length) {
      throw new TypeError('private_key_jwt clients need a JWK set with at least one public key');
    }
    const clientId = `dpc_${randomBytes(12).toString('hex')}`;
    const secret =
      input.authMethod === 'private_key_jwt' ? null : randomBytes(32).toString('base64url');
    await this.#db
      .insertInto('runtime_clients')
      .values({
        client_id: clientId,
        workspace: input.workspace,
        agent: input.agent,
        auth_method: input.authMethod,
        secret_hash: secret === null ? null : hash(secret).toString('hex'),
        jwks: input.jwks ? JSON.stringify(publicOnly(input.jwks)) : null,
        label: input.label ?? '',
        created_at: new Date().toISOString(),
        disabled_at: null,
      })
      .execute();
    await this.refresh();
    return { client: this.get(clientId) as RuntimeClient, secret };
  }

  async disable(clientId: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('runtime_clients')
      .set({ disabled_at: new Date().toISOString() })
      .where('client_id', '=', clientId)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    await this.refresh();
    return Number(result.numUpdatedRows) > 0;
  }

  get(clientId: string): RuntimeClient | null {
    const stored = this.#byId.get(clientId);
    if (!stored) return null;
    const { secretHash: _secretHash, ...client } = stored;
    return client;
  }

  list(workspace: string): RuntimeClient[] {
    return [...this.#byId.keys()]
      .map((id) => this.get(id) as RuntimeClient)
      .filter((client) => client.workspace === workspace);
  }

  /** Checks a client secret in constant time. False for unknown, disabled or key-based clients. */
  verifySecret(clientId: string, secret: string): boolean {
    const stored = this.#byId.get(clientId);
    if (!stored || stored.disabledAt !== null || stored.secretHash === null) return false;
    return timingSafeEqual(hash(secret), stored.secretHash);
  }
}

/** Returns the key set if it has asymmetric public keys only; a private key is a misuse. */
function publicOnly(jwks: JSONWebKeySet): JSONWebKeySet {
  for (const key of jwks.keys) {
    if (key.kty === 'oct' || 'd' in key || 'k' in key) {
      throw new TypeError(
        'the JWK set must hold public keys only: remove private and symmetric keys',
      );
    }
  }
  return { keys: jwks.keys };
}

function fromRow(row: Tables['runtime_clients']): StoredClient {
  return {
    clientId: row.client_id,
    workspace: row.workspace,
    agent: row.agent,
    authMethod: row.auth_method as ClientAuthMethod,
    jwks: row.jwks ? (JSON.parse(row.jwks) as JSONWebKeySet) : null,
    label: row.label,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
    secretHash: row.secret_hash ? Buffer.from(row.secret_hash, 'hex') : null,
  };
}
