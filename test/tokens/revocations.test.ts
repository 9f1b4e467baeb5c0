/**
 * Revocation state on every storage backend: revoked tokens until they expire, principal
 * revocations that keep their latest time, and what survives a restart.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { openDatabase } from '../../src/storage/database.js';
import { type RevocableClaims, RevocationStore } from '../../src/tokens/revocations.js';
import { testBackends, type TestDatabase } from '../support/databases.js';
import { at, T0 } from './helpers.js';

const backends = await testBackends();

describe.each(backends.map((backend) => [backend.name, backend] as const))(
  'revocations on %s',
  (_name, backend) => {
    // One database per backend, so each test uses its own workspace and token ids.
    let database: TestDatabase;
    let now = T0;
    let counter = 0;
    /** A workspace or token id no other test uses. */
    const fresh = (prefix: string) => `${prefix}-${++counter}`;
    const newStore = async (db = database.db) => {
      const store = new RevocationStore(db, { now: () => at(now) });
      await store.refresh();
      return store;
    };
    const claims = (workspace: string, sub: string, iat: number, extra = {}): RevocableClaims => ({
      jti: fresh('jti'),
      iat,
      sub,
      workspace,
      ...extra,
    });

    beforeAll(async () => {
      database = await backend.open();
    });

    afterAll(async () => {
      await database.destroy();
    });

    beforeEach(() => {
      now = T0;
    });

    it('reports a revoked token to every process', async () => {
      const jti = fresh('jti');
      const store = await newStore();
      await store.revokeToken(jti, T0 + 600);

      expect(store.isTokenRevoked(jti)).toBe(true);
      expect(store.isTokenRevoked(fresh('jti'))).toBe(false);
      expect((await newStore()).isTokenRevoked(jti)).toBe(true);
    });

    it('purges a revoked token after it expires', async () => {
      const jti = fresh('jti');
      const store = await newStore();
      await store.revokeToken(jti, T0 + 60);

      // Kept through the clock tolerance margin after exp.
      now = T0 + 120;
      await store.refresh();
      expect(store.isTokenRevoked(jti)).toBe(true);

      now = T0 + 60 + 301;
      await store.refresh();
      expect(store.isTokenRevoked(jti)).toBe(false);
      const rows = await database.db
        .selectFrom('revoked_tokens')
        .selectAll()
        .where('jti', '=', jti)
        .execute();
      expect(rows).toHaveLength(0);
    });

    it('keeps the latest principal revocation', async () => {
      const workspace = fresh('ws');
      const store = await newStore();
      await store.revokePrincipal(workspace, 'agent:helper', T0 + 100);
      await store.revokePrincipal(workspace, 'agent:helper', T0 + 50);

      expect(store.revokedSince(workspace, 'agent:helper')).toBe(T0 + 100);
      expect((await newStore()).revokedSince(workspace, 'agent:helper')).toBe(T0 + 100);

      await store.revokePrincipal(workspace, 'agent:helper', T0 + 200.9);
      expect(store.revokedSince(workspace, 'agent:helper')).toBe(T0 + 200);
      expect((await newStore()).revokedSince(workspace, 'agent:helper')).toBe(T0 + 200);
      expect(store.revokedSince(workspace, 'agent:other')).toBeNull();
      expect(store.revokedSince(fresh('ws'), 'agent:helper')).toBeNull();
    });

    it('makes tokens issued at or before revocation inactive', async () => {
      const workspace = fresh('ws');
      const store = await newStore();
      await store.revokePrincipal(workspace, 'agent:helper', T0);

      expect(store.isInactive(claims(workspace, 'agent:helper', T0 - 10))).toBe(true);
      expect(store.isInactive(claims(workspace, 'agent:helper', T0))).toBe(true);
      expect(store.isInactive(claims(workspace, 'agent:helper', T0 + 1))).toBe(false);
    });

    it('keeps old tokens inactive after re-enabling', async () => {
      // Re-enabling an agent writes nothing here: the revocation row stays, and only tokens
      // issued after it are active.
      const workspace = fresh('ws');
      await (await newStore()).revokePrincipal(workspace, 'agent:helper', T0);
      const store = await newStore();

      expect(store.isInactive(claims(workspace, 'agent:helper', T0 - 1))).toBe(true);
      expect(store.isInactive(claims(workspace, 'agent:helper', T0 + 5))).toBe(false);
    });

    it('revokes every identity of a revoked agent', async () => {
      const workspace = fresh('ws');
      const store = await newStore();
      await store.revokePrincipal(workspace, 'agent:helper/*', T0);
      const iat = T0 - 1;

      expect(store.isInactive(claims(workspace, 'agent:helper', iat))).toBe(true);
      expect(store.isInactive(claims(workspace, 'agent:helper/channel:C02', iat))).toBe(true);
      const dm = claims(workspace, 'member:U03', iat, { agent: 'helper' });
      expect(store.isInactive(dm)).toBe(true);
      expect(store.isInactive(claims(workspace, 'member:U03', iat))).toBe(false);
      expect(store.isInactive(claims(workspace, 'agent:other', iat))).toBe(false);
      expect(store.isInactive(claims(fresh('ws'), 'agent:helper', iat))).toBe(false);
    });

    it('revokes one identity only', async () => {
      const workspace = fresh('ws');
      const store = await newStore();
      await store.revokePrincipal(workspace, 'agent:helper/channel:C02', T0);
      const iat = T0 - 1;

      expect(store.isInactive(claims(workspace, 'agent:helper/channel:C02', iat))).toBe(true);
      expect(store.isInactive(claims(workspace, 'agent:helper/channel:C03', iat))).toBe(false);
      expect(store.isInactive(claims(workspace, 'agent:helper', iat))).toBe(false);
    });

    it('revokes the workspace identity only', async () => {
      const workspace = fresh('ws');
      const store = await newStore();
      await store.revokePrincipal(workspace, 'agent:helper', T0);
      const iat = T0 - 1;

      expect(store.isInactive(claims(workspace, 'agent:helper', iat))).toBe(true);
      expect(store.isInactive(claims(workspace, 'agent:helper/channel:C02', iat))).toBe(false);
      expect(store.isInactive(claims(workspace, 'member:U03', iat, { agent: 'helper' }))).toBe(
        false,
      );
    });

    it('makes a token with a revoked jti inactive', async () => {
      const workspace = fresh('ws');
      const store = await newStore();
      const token = claims(workspace, 'agent:helper', T0);
      await store.revokeToken(token.jti as string, T0 + 60);

      expect(store.isInactive(token)).toBe(true);
      expect(store.isInactive(claims(workspace, 'agent:helper', T0))).toBe(false);
    });

    it('treats missing or mistyped claims as inactive', async () => {
      const store = await newStore();
      const valid = claims(fresh('ws'), 'agent:helper', T0);
      expect(store.isInactive(valid)).toBe(false);

      const broken: RevocableClaims[] = [
        { ...valid, jti: undefined },
        { ...valid, iat: '1900000000' },
        { ...valid, iat: Number.NaN },
        { ...valid, sub: 7 },
        { ...valid, workspace: undefined },
        { ...valid, agent: ['helper'] },
      ];
      for (const token of broken) {
        expect(store.isInactive(token)).toBe(true);
      }
    });

    it('rejects an invalid principal', async () => {
      const store = await newStore();
      for (const principal of ['helper', 'agent:', 'agent:a/b', 'member:x y', 'agent:a/dm:U1']) {
        await expect(store.revokePrincipal('ws', principal, T0)).rejects.toThrow(TypeError);
      }
      await expect(store.revokePrincipal('', 'agent:a', T0)).rejects.toThrow(TypeError);
      await expect(store.revokePrincipal('ws', 'agent:a', Number.NaN)).rejects.toThrow(TypeError);
    });

    it('throws when read before refresh', () => {
      const store = new RevocationStore(database.db);

      expect(() => store.isTokenRevoked('any')).toThrow(/refresh/);
      expect(() => store.revokedSince('ws', 'agent:a')).toThrow(/refresh/);
    });

    it('keeps revocations across a restart', async () => {
      const own = await backend.open();
      try {
        const before = await newStore(own.db);
        await before.revokeToken('jti-restart', T0 + 600);
        await before.revokePrincipal('acme', 'agent:helper', T0);
        await own.close();

        const reopened = await openDatabase(own.location);
        try {
          const after = await newStore(reopened.db);
          expect(after.isTokenRevoked('jti-restart')).toBe(true);
          expect(after.revokedSince('acme', 'agent:helper')).toBe(T0);
          expect(after.isInactive(claims('acme', 'agent:helper', T0))).toBe(true);
        } finally {
          await reopened.close();
        }
      } finally {
        await own.destroy();
      }
    });
  },
);
