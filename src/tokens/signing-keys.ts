/**
 * Token signing keys: ES256 key pairs stored with the private key sealed under the master key.
 * One key is current and signs new tokens. A rotated-out key stays published, so tokens it
 * signed keep verifying until they expire.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, type JSONWebKeySet, type JWK } from 'jose';
import type { Kysely, Selectable } from 'kysely';

import { MASTER_KEY_BYTES } from '../keys/master-key.js';
import { seal, unseal } from '../keys/seal.js';
import type { SigningKeyTable, Tables } from '../storage/schema.js';

/** The JWS algorithm of every Deputy signing key: ECDSA on P-256 with SHA-256 (RFC 7518). */
export const SIGNING_ALGORITHM = 'ES256';

export interface SigningKeyStoreOptions {
  /**
   * Maximum lifetime of a token signed with these keys, in seconds. A retired key stays
   * published for this long after it was retired.
   */
  maxTokenLifetimeSeconds: number;
  /** Clock, replaced in tests. @default () => new Date() */
  now?: () => Date;
}

/** The key that signs new tokens. */
export interface CurrentSigningKey {
  readonly kid: string;
  readonly alg: typeof SIGNING_ALGORITHM;
  readonly privateKey: KeyObject;
}

interface CachedKey {
  readonly kid: string;
  readonly publicJwk: JWK;
  readonly publicKey: KeyObject;
  readonly sealedPrivate: string;
  readonly createdAt: string;
  readonly retired: boolean;
  /** When a retired key stops being published, in milliseconds since the epoch. */
  readonly notAfterMs: number | null;
}

/**
 * Signing keys cached in memory. The cache loads on first use, and `refresh()` reloads it so a
 * process picks up keys that another process created or rotated.
 */
export class SigningKeyStore {
  readonly maxTokenLifetimeSeconds: number;
  readonly #db: Kysely<Tables>;
  readonly #masterKey: Uint8Array;
  readonly #now: () => Date;
  #keys: Map<string, CachedKey> | null = null;
  /** The current key as last computed; cleared whenever the cache reloads. */
  #current: CurrentSigningKey | null = null;
  #refreshes = 0;
  readonly #privateKeys = new Map<string, KeyObject>();

  constructor(db: Kysely<Tables>, masterKey: Uint8Array, options: SigningKeyStoreOptions) {
    const lifetime = options.maxTokenLifetimeSeconds;
    if (!Number.isSafeInteger(lifetime) || lifetime <= 0) {
      throw new TypeError('maxTokenLifetimeSeconds must be a positive whole number of seconds');
    }
    if (!(masterKey instanceof Uint8Array) || masterKey.length !== MASTER_KEY_BYTES) {
      throw new TypeError(`masterKey must be ${MASTER_KEY_BYTES} bytes`);
    }
    this.maxTokenLifetimeSeconds = lifetime;
    this.#db = db;
    this.#masterKey = masterKey;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Returns the current signing key, and creates one when the database has none.
   *
   * NOTE: a key that another process retired keeps signing here until the next `refresh()`,
   * so tokens signed in that gap stop verifying up to that long before their `exp`.
   */
  async current(): Promise<CurrentSigningKey> {
    if (this.#current !== null) return this.#current;
    if (this.#keys === null) await this.refresh();
    let key = this.#currentKey();
    if (key === undefined) {
      await this.#insertKey(this.#db);
      await this.refresh();
      key = this.#currentKey();
    }
    if (key === undefined) {
      throw new Error('no current signing key after creating one: check the signing_keys table');
    }
    this.#current = { kid: key.kid, alg: SIGNING_ALGORITHM, privateKey: this.#privateKey(key) };
    return this.#current;
  }

  /**
   * Creates a key and makes it current. The previous key is retired and stays published for
   * `maxTokenLifetimeSeconds`.
   */
  async rotate(): Promise<CurrentSigningKey> {
    const now = this.#now();
    const notAfter = new Date(now.getTime() + this.maxTokenLifetimeSeconds * 1000);
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .updateTable('signing_keys')
        .set({ retired_at: now.toISOString(), not_after: notAfter.toISOString() })
        .where('retired_at', 'is', null)
        .execute();
      await this.#insertKey(trx);
    });
    await this.refresh();
    return await this.current();
  }

  /** Returns the published public keys, current first, for the `jwks_uri` document. */
  async publicJwks(): Promise<JSONWebKeySet> {
    if (this.#keys === null) await this.refresh();
    const nowMs = this.#now().getTime();
    const published = [...this.#loadedKeys().values()].filter((key) => isPublished(key, nowMs));
    published.sort(newestFirst);
    return {
      keys: published.map((key) => ({
        ...key.publicJwk,
        kid: key.kid,
        alg: SIGNING_ALGORITHM,
        use: 'sig',
      })),
    };
  }

  /**
   * Reloads every key from the database. When reloads overlap, the one started last wins, so
   * a slow reload cannot bring back the key that a rotation retired.
   */
  async refresh(): Promise<void> {
    const ticket = ++this.#refreshes;
    const rows = await this.#db.selectFrom('signing_keys').selectAll().execute();
    if (ticket === this.#refreshes || this.#keys === null) {
      this.#keys = new Map(rows.map((row) => [row.kid, toCachedKey(row)]));
      this.#current = null;
    }
  }

  /**
   * Returns the public key with this `kid` when it is published at `now`, or null. Only the
   * cache is consulted, so a key another process created is found after `refresh()`.
   *
   * Throws an Error when the cache was never loaded: call `current()` or `refresh()` at start-up.
   */
  verificationKey(kid: string, now: Date = this.#now()): KeyObject | null {
    const key = this.#loadedKeys().get(kid);
    if (key === undefined || !isPublished(key, now.getTime())) return null;
    return key.publicKey;
  }

  #loadedKeys(): Map<string, CachedKey> {
    if (this.#keys === null) {
      throw new Error('signing keys are not loaded: call current() or refresh() first');
    }
    return this.#keys;
  }

  #currentKey(): CachedKey | undefined {
    const current = [...this.#loadedKeys().values()].filter((key) => !key.retired);
    return current.sort(newestFirst)[0];
  }

  #privateKey(key: CachedKey): KeyObject {
    let privateKey = this.#privateKeys.get(key.kid);
    if (privateKey === undefined) {
      const jwk = unseal(this.#masterKey, key.sealedPrivate, aadFor(key.kid)).toString('utf8');
      privateKey = createPrivateKey({ key: JSON.parse(jwk) as JsonWebKey, format: 'jwk' });
      this.#privateKeys.set(key.kid, privateKey);
    }
    return privateKey;
  }

  /**
   * Inserts a new current key. When another process inserted one first, the unique index on
   * current keys makes this insert do nothing, and the caller's refresh finds the other key.
   */
  async #insertKey(db: Kysely<Tables>): Promise<void> {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
    const privateJwk = JSON.stringify(await exportJWK(privateKey));

    await db
      .insertInto('signing_keys')
      .values({
        kid,
        alg: SIGNING_ALGORITHM,
        public_jwk: JSON.stringify(publicJwk),
        sealed_private: seal(this.#masterKey, privateJwk, aadFor(kid)),
        created_at: this.#now().toISOString(),
        retired_at: null,
        not_after: null,
      })
      .onConflict((conflict) => conflict.doNothing())
      .execute();
  }
}

/** Sealing context of a private key, so a sealed key copied to another row fails to unseal. */
function aadFor(kid: string): string {
  return `signing-key/${kid}`;
}

function toCachedKey(row: Selectable<SigningKeyTable>): CachedKey {
  if (row.alg !== SIGNING_ALGORITHM) {
    throw new Error(`signing key ${row.kid} has alg ${row.alg}: only ES256 keys are supported`);
  }
  const publicJwk = JSON.parse(row.public_jwk) as JWK;
  return {
    kid: row.kid,
    publicJwk,
    publicKey: createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' }),
    sealedPrivate: row.sealed_private,
    createdAt: row.created_at,
    retired: row.retired_at !== null,
    notAfterMs: row.not_after === null ? null : Date.parse(row.not_after),
  };
}

function isPublished(key: CachedKey, nowMs: number): boolean {
  if (!key.retired) return true;
  return key.notAfterMs !== null && nowMs < key.notAfterMs;
}

function newestFirst(a: CachedKey, b: CachedKey): number {
  if (a.retired !== b.retired) return a.retired ? 1 : -1;
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  return a.kid < b.kid ? 1 : -1;
}
