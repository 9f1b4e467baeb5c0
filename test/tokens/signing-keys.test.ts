/**
 * Signing keys on every storage backend: creation, rotation and publication, sealing of the
 * private keys, and persistence across a restart.
 */
import { randomBytes } from 'node:crypto';

import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { KeyError } from '../../src/keys/errors.js';
import { unseal } from '../../src/keys/seal.js';
import { openDatabase } from '../../src/storage/database.js';
import { signToken } from '../../src/tokens/issue.js';
import { SigningKeyStore } from '../../src/tokens/signing-keys.js';
import { ACCESS_TOKEN_TYPE } from '../../src/tokens/types.js';
import { verifyToken } from '../../src/tokens/verify.js';
import { testBackends, type TestDatabase } from '../support/databases.js';
import { at, AUDIENCE, expectRejected, ISSUER, T0 } from './helpers.js';

const backends = await testBackends();
const MASTER_KEY = randomBytes(32);
const MAX_LIFETIME = 600;

describe.each(backends.map((backend) => [backend.name, backend] as const))(
  'signing keys on %s',
  (_name, backend) => {
    // One database per backend keeps PGlite's start-up cost to one per suite, so each test
    // starts by deleting the keys. The restart test opens its own database.
    let database: TestDatabase;
    let now = T0;
    const clock = () => at(now);
    const newStore = (db = database.db) =>
      new SigningKeyStore(db, MASTER_KEY, { maxTokenLifetimeSeconds: MAX_LIFETIME, now: clock });

    /** Signs an access token at the frozen time, valid for `lifetime` seconds. */
    const sign = (store: SigningKeyStore, lifetime = MAX_LIFETIME) =>
      signToken(store, {
        typ: ACCESS_TOKEN_TYPE,
        claims: { iss: ISSUER, aud: AUDIENCE, sub: 'agent:helper' },
        lifetimeSeconds: lifetime,
        now: clock(),
      });

    const verify = (store: SigningKeyStore, token: string, seconds: number) =>
      verifyToken(store, token, {
        issuer: ISSUER,
        audience: AUDIENCE,
        typ: ACCESS_TOKEN_TYPE,
        clockToleranceSeconds: 0,
        now: at(seconds),
      });

    const kidsOf = async (store: SigningKeyStore) =>
      (await store.publicJwks()).keys.map((key) => key.kid);

    beforeAll(async () => {
      database = await backend.open();
    });

    afterAll(async () => {
      await database.destroy();
    });

    beforeEach(async () => {
      now = T0;
      await database.db.deleteFrom('signing_keys').execute();
    });

    it('creates one ES256 key on first use', async () => {
      const store = newStore();
      const key = await store.current();
      const jwks = await store.publicJwks();

      expect(jwks.keys).toHaveLength(1);
      const [published] = jwks.keys;
      expect(published).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(published).not.toHaveProperty('d');
      expect(key.kid).toBe(await calculateJwkThumbprint(published!, 'sha256'));
      expect((await store.current()).kid).toBe(key.kid);
      expect(await database.db.selectFrom('signing_keys').selectAll().execute()).toHaveLength(1);
    });

    it('keeps one key when two stores create at once', async () => {
      const [first, second] = await Promise.all([newStore().current(), newStore().current()]);

      expect(second.kid).toBe(first.kid);
      expect(await database.db.selectFrom('signing_keys').selectAll().execute()).toHaveLength(1);
    });

    it('publishes a retired key until its expiry', async () => {
      const store = newStore();
      const old = await store.current();
      now = T0 + 10;
      const fresh = await store.rotate();

      expect(fresh.kid).not.toBe(old.kid);
      expect((await store.current()).kid).toBe(fresh.kid);
      expect(await kidsOf(store)).toEqual([fresh.kid, old.kid]);

      now = T0 + 10 + MAX_LIFETIME - 1;
      expect(await kidsOf(store)).toEqual([fresh.kid, old.kid]);
      expect(store.verificationKey(old.kid)).not.toBeNull();

      now = T0 + 10 + MAX_LIFETIME;
      expect(await kidsOf(store)).toEqual([fresh.kid]);
      expect(store.verificationKey(old.kid)).toBeNull();
      expect(store.verificationKey(fresh.kid)).not.toBeNull();
    });

    it('verifies a token signed before rotation until exp', async () => {
      const store = newStore();
      const token = await sign(store);
      now = T0 + 60;
      await store.rotate();

      const payload = await verify(store, token, T0 + MAX_LIFETIME - 1);
      expect(payload.sub).toBe('agent:helper');
      await expectRejected(() => verify(store, token, T0 + MAX_LIFETIME + 1), 'ERR_TOKEN_EXPIRED');

      const later = await sign(store);
      await expect(verify(store, later, T0 + 61)).resolves.toMatchObject({ iat: T0 + 60 });
    });

    it('stores private keys sealed', async () => {
      const store = newStore();
      const { kid } = await store.current();
      const row = await database.db
        .selectFrom('signing_keys')
        .selectAll()
        .where('kid', '=', kid)
        .executeTakeFirstOrThrow();
      const privateJwk = JSON.parse(
        unseal(MASTER_KEY, row.sealed_private, `signing-key/${kid}`).toString('utf8'),
      ) as { d: string };

      expect(row.sealed_private).toMatch(/^v1\./);
      expect(JSON.stringify(row)).not.toContain(privateJwk.d);
      expect(JSON.stringify(row)).not.toContain('"d"');
      expect(() => unseal(MASTER_KEY, row.sealed_private, 'signing-key/other')).toThrow(KeyError);
    });

    it('fails to sign with another master key', async () => {
      await newStore().current();
      const stranger = new SigningKeyStore(database.db, randomBytes(32), {
        maxTokenLifetimeSeconds: MAX_LIFETIME,
      });

      await expect(stranger.current()).rejects.toMatchObject({ code: 'ERR_UNSEAL_FAILED' });
    });

    it('sees another process rotate after refresh', async () => {
      const first = newStore();
      const second = newStore();
      const old = await first.current();
      expect((await second.current()).kid).toBe(old.kid);

      const fresh = await first.rotate();
      expect(second.verificationKey(fresh.kid)).toBeNull();
      await second.refresh();

      expect(second.verificationKey(fresh.kid)).not.toBeNull();
      expect((await second.current()).kid).toBe(fresh.kid);
    });

    it('keeps keys across a restart', async () => {
      const own = await backend.open();
      try {
        const before = newStore(own.db);
        const old = await before.current();
        const token = await sign(before, 60);
        const fresh = await before.rotate();
        await own.close();

        const reopened = await openDatabase(own.location);
        try {
          const after = newStore(reopened.db);
          expect((await after.current()).kid).toBe(fresh.kid);
          expect(await kidsOf(after)).toEqual([fresh.kid, old.kid]);
          await expect(verify(after, token, T0 + 30)).resolves.toMatchObject({ iat: T0 });
        } finally {
          await reopened.close();
        }
      } finally {
        await own.destroy();
      }
    });

    it('rejects an unknown kid', async () => {
      const store = newStore();
      await store.current();

      expect(store.verificationKey('unknown')).toBeNull();
      expect(store.verificationKey('__proto__')).toBeNull();
    });

    it('throws when read before loading', () => {
      expect(() => newStore().verificationKey('any')).toThrow(/not loaded/);
    });
  },
);

describe('SigningKeyStore options', () => {
  it('rejects a lifetime that is not positive', () => {
    const db = {} as TestDatabase['db'];
    for (const lifetime of [0, -1, 1.5, Number.NaN]) {
      expect(
        () => new SigningKeyStore(db, MASTER_KEY, { maxTokenLifetimeSeconds: lifetime }),
      ).toThrow(TypeError);
    }
  });

  it('rejects a short master key', () => {
    const db = {} as TestDatabase['db'];
    expect(() => new SigningKeyStore(db, randomBytes(16), { maxTokenLifetimeSeconds: 60 })).toThrow(
      TypeError,
    );
  });
});
