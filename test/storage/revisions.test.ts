/**
 * Policy revisions and API keys on every storage backend: numbering, optimistic concurrency,
 * persistence across a restart, and keys that are stored only as hashes.
 */
import { createHash } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Policy } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';
import { ApiKeyStore, type Role } from '../../src/storage/api-keys.js';
import { type Database, openDatabase } from '../../src/storage/database.js';
import { RevisionConflictError, RevisionStore } from '../../src/storage/revisions.js';
import { testBackends, type TestDatabase } from '../support/databases.js';

const backends = await testBackends();

/** Builds a valid policy for `workspace` whose agents are `agents`, all active. */
function policyOf(workspace: string, ...agents: string[]): Policy {
  const result = parsePolicy({
    version: 1,
    workspace: { id: workspace },
    agents: agents.map((id) => ({ id })),
  });
  if (!result.ok) throw new Error(`invalid test policy: ${JSON.stringify(result.issues)}`);
  return result.policy;
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const KEY = /^dpy_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

/** Splits a key into its id and secret parts. */
function partsOf(key: string): { id: string; secret: string } {
  const match = KEY.exec(key);
  if (!match) throw new Error(`not a Deputy API key: ${key.slice(0, 4)}…`);
  return { id: match[1]!, secret: match[2]! };
}

describe.each(backends.map((backend) => [backend.name, backend] as const))(
  'storage on %s',
  (_name, backend) => {
    // One database per backend keeps PGlite's start-up cost to one per suite, so each test
    // uses its own workspace ids and key ids. The restart tests open their own database.
    let database: TestDatabase;
    let counter = 0;
    /** A workspace id no other test uses. */
    const fresh = () => `ws-${++counter}`;

    beforeAll(async () => {
      database = await backend.open();
    });

    afterAll(async () => {
      await database.destroy();
    });

    /**
     * Opens a database of its own for `work`, then closes it and opens it again from its
     * location, as a restart does, for `check`.
     */
    async function acrossRestart(
      work: (db: Database['db']) => Promise<void>,
      check: (db: Database['db']) => Promise<void>,
    ): Promise<void> {
      const own = await backend.open();
      let reopened: Database | null = null;
      try {
        await work(own.db);
        await own.close();
        reopened = await openDatabase(own.location);
        await check(reopened.db);
      } finally {
        await reopened?.close();
        await own.destroy();
      }
    }

    describe('RevisionStore', () => {
      it('starts a workspace empty', async () => {
        const store = new RevisionStore(database.db);
        const alpha = fresh();

        expect(await store.workspaces()).not.toContain(alpha);
        expect(await store.current(alpha)).toBeNull();
        expect(await store.get(alpha, 1)).toBeNull();
        expect(await store.list(alpha)).toEqual([]);
      });

      it('numbers revisions from 1', async () => {
        const store = new RevisionStore(database.db);
        const alpha = fresh();
        const first = policyOf(alpha, 'helper');
        const second = policyOf(alpha, 'helper', 'scout');

        const firstNumber = await store.append(first, {
          expected: 0,
          actor: 'cli:ann',
          summary: 'one',
        });
        const secondNumber = await store.append(second, {
          expected: 1,
          actor: 'cli:bob',
          summary: 'two',
        });

        expect([firstNumber, secondNumber]).toEqual([1, 2]);
        expect(await store.current(alpha)).toEqual({
          workspace: alpha,
          revision: 2,
          policy: second,
          actor: 'cli:bob',
          summary: 'two',
          createdAt: expect.stringMatching(ISO_TIME),
        });
        expect((await store.get(alpha, 1))?.policy).toEqual(first);
        expect((await store.get(alpha, 2))?.policy).toEqual(second);
        expect(await store.get(alpha, 3)).toBeNull();
      });

      it('lists summaries in order without policies', async () => {
        const store = new RevisionStore(database.db);
        const alpha = fresh();
        await store.append(policyOf(alpha), { expected: 0, actor: 'cli:ann', summary: 'one' });
        await store.append(policyOf(alpha, 'a'), { expected: 1, actor: 'key:1', summary: 'two' });

        const list = await store.list(alpha);

        expect(list).toEqual([
          {
            workspace: alpha,
            revision: 1,
            actor: 'cli:ann',
            summary: 'one',
            createdAt: expect.stringMatching(ISO_TIME),
          },
          {
            workspace: alpha,
            revision: 2,
            actor: 'key:1',
            summary: 'two',
            createdAt: expect.stringMatching(ISO_TIME),
          },
        ]);
      });

      it('numbers each workspace on its own', async () => {
        const store = new RevisionStore(database.db);
        const [alpha, beta] = [fresh(), fresh()];
        const call = { actor: 'cli:ann', summary: 'create' };

        await store.append(policyOf(beta), { ...call, expected: 0 });
        await store.append(policyOf(alpha), { ...call, expected: 0 });
        const second = await store.append(policyOf(beta, 'x'), { ...call, expected: 1 });

        expect(second).toBe(2);
        const workspaces = await store.workspaces();
        expect(workspaces).toEqual(expect.arrayContaining([alpha, beta]));
        expect(workspaces).toEqual([...workspaces].sort());
        expect(new Set(workspaces).size).toBe(workspaces.length);
        expect((await store.current(alpha))?.revision).toBe(1);
        expect((await store.current(beta))?.revision).toBe(2);
      });

      it('rejects a stale expected revision', async () => {
        const store = new RevisionStore(database.db);
        const alpha = fresh();
        const call = { actor: 'cli:ann', summary: 'edit' };
        await store.append(policyOf(alpha), { ...call, expected: 0 });
        await store.append(policyOf(alpha, 'a'), { ...call, expected: 1 });

        const stale = store.append(policyOf(alpha, 'b'), { ...call, expected: 1 });

        const error = await stale.then(
          () => null,
          (caught: unknown) => caught,
        );
        expect(error).toBeInstanceOf(RevisionConflictError);
        expect(error).toMatchObject({
          code: 'ERR_REVISION_CONFLICT',
          workspace: alpha,
          expected: 1,
          current: 2,
          message: `workspace ${alpha} is at revision 2, not 1: reload it and apply the change again`,
        });
        expect((await store.list(alpha)).map((item) => item.revision)).toEqual([1, 2]);
        expect((await store.current(alpha))?.policy).toEqual(policyOf(alpha, 'a'));
      });

      it('rejects an expected revision ahead of the store', async () => {
        const store = new RevisionStore(database.db);
        const alpha = fresh();

        const ahead = store.append(policyOf(alpha), { expected: 3, actor: 'x', summary: 'x' });

        await expect(ahead).rejects.toMatchObject({ expected: 3, current: 0 });
        expect(await store.list(alpha)).toEqual([]);
      });

      it('lets exactly one of 10 concurrent appends win', async () => {
        const store = new RevisionStore(database.db);
        const alpha = fresh();
        await store.append(policyOf(alpha), { expected: 0, actor: 'cli', summary: 'create' });

        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, index) =>
            store.append(policyOf(alpha, `agent-${index}`), {
              expected: 1,
              actor: `node:${index}`,
              summary: `writer ${index}`,
            }),
          ),
        );

        const won = results.filter((result) => result.status === 'fulfilled');
        const lost = results.filter((result) => result.status === 'rejected');
        expect(won).toEqual([{ status: 'fulfilled', value: 2 }]);
        expect(lost).toHaveLength(9);
        for (const result of lost) {
          expect(result.reason).toBeInstanceOf(RevisionConflictError);
          expect(result.reason).toMatchObject({ expected: 1, current: 2 });
        }
        const list = await store.list(alpha);
        expect(list.map((item) => item.revision)).toEqual([1, 2]);
        const winner = Number(list[1]!.actor.slice('node:'.length));
        expect((await store.current(alpha))?.policy).toEqual(policyOf(alpha, `agent-${winner}`));
      });

      it('lets one of two stores on one database win', async () => {
        const first = new RevisionStore(database.db);
        const second = new RevisionStore(database.db);
        const alpha = fresh();
        await first.append(policyOf(alpha), { expected: 0, actor: 'a', summary: 'create' });

        const results = await Promise.allSettled([
          first.append(policyOf(alpha, 'one'), { expected: 1, actor: 'a', summary: 'a' }),
          second.append(policyOf(alpha, 'two'), { expected: 1, actor: 'b', summary: 'b' }),
        ]);

        expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
        expect((await second.list(alpha)).map((item) => item.revision)).toEqual([1, 2]);
      });

      it('keeps revisions across a restart', async () => {
        const first = policyOf('alpha', 'helper');
        const second = policyOf('alpha', 'helper', 'scout');
        let before: unknown;

        await acrossRestart(
          async (db) => {
            const store = new RevisionStore(db);
            await store.append(first, { expected: 0, actor: 'cli:ann', summary: 'one' });
            await store.append(second, { expected: 1, actor: 'cli:ann', summary: 'two' });
            before = await store.list('alpha');
          },
          async (db) => {
            const after = new RevisionStore(db);
            expect(await after.list('alpha')).toEqual(before);
            expect(await after.current('alpha')).toMatchObject({ revision: 2, policy: second });
            expect((await after.get('alpha', 1))?.policy).toEqual(first);
            const stale = after.append(first, { expected: 1, actor: 'cli:ann', summary: 'old' });
            await expect(stale).rejects.toBeInstanceOf(RevisionConflictError);
            const three = await after.append(first, { expected: 2, actor: 'cli', summary: '3' });
            expect(three).toBe(3);
          },
        );
      });
    });

    describe('ApiKeyStore', () => {
      it('creates a key that verifies with its role', async () => {
        const keys = new ApiKeyStore(database.db);

        const created = await keys.create('pep', 'gateway');

        expect(created.key).toMatch(KEY);
        expect(partsOf(created.key).id).toBe(created.id);
        expect(await keys.verify(created.key)).toEqual({ id: created.id, role: 'pep' });
      });

      it('gives every role its own key', async () => {
        const keys = new ApiKeyStore(database.db);
        const roles: Role[] = ['admin', 'pep', 'auditor'];

        const created = await Promise.all(roles.map((role) => keys.create(role, role)));

        expect(new Set(created.map((item) => item.id)).size).toBe(3);
        for (const [index, item] of created.entries()) {
          expect(await keys.verify(item.key)).toEqual({ id: item.id, role: roles[index] });
        }
      });

      it('rejects a wrong secret, an unknown id and garbage', async () => {
        const keys = new ApiKeyStore(database.db);
        const created = await keys.create('admin', '');
        const { id, secret } = partsOf(created.key);
        const otherSecret = secret.startsWith('A') ? `B${secret.slice(1)}` : `A${secret.slice(1)}`;

        expect(await keys.verify(`dpy_${id}_${otherSecret}`)).toBeNull();
        expect(await keys.verify(`dpy_${'0'.repeat(16)}_${secret}`)).toBeNull();
        expect(await keys.verify(`${created.key}x`)).toBeNull();
        expect(await keys.verify(created.key.toUpperCase())).toBeNull();
        expect(await keys.verify('')).toBeNull();
        expect(await keys.verify('dpy_')).toBeNull();
      });

      it('rejects an unknown role', async () => {
        const keys = new ApiKeyStore(database.db);

        const before = (await keys.list()).length;

        await expect(keys.create('root' as Role, '')).rejects.toThrow(TypeError);

        expect(await keys.list()).toHaveLength(before);
      });

      it('revokes a key once', async () => {
        const keys = new ApiKeyStore(database.db);
        const created = await keys.create('pep', 'gateway');

        expect(await keys.revoke(created.id)).toBe(true);

        expect(await keys.verify(created.key)).toBeNull();
        expect(await keys.revoke(created.id)).toBe(false);
        expect(await keys.revoke('ffffffffffffffff')).toBe(false);
        const listed = (await keys.list()).find((item) => item.id === created.id);
        expect(listed).toEqual({
          id: created.id,
          role: 'pep',
          label: 'gateway',
          createdAt: expect.stringMatching(ISO_TIME),
          revokedAt: expect.stringMatching(ISO_TIME),
        });
      });

      it('stores only the hash of the secret', async () => {
        const keys = new ApiKeyStore(database.db);
        const created = await keys.create('admin', 'ops');
        const { secret } = partsOf(created.key);

        const rows = await database.db.selectFrom('api_keys').selectAll().execute();

        expect(rows.filter((row) => row.id === created.id)).toHaveLength(1);
        const row = rows.find((item) => item.id === created.id)!;
        expect(row.secret_hash).not.toBe(created.key);
        expect(row.secret_hash).not.toContain(secret);
        expect(row.secret_hash).toBe(createHash('sha256').update(secret).digest('hex'));
        expect(JSON.stringify(rows)).not.toContain(secret);
        expect(JSON.stringify(await keys.list())).not.toContain(secret);
      });

      it('verifies a key created by another store', async () => {
        const thisNode = new ApiKeyStore(database.db);
        const otherNode = new ApiKeyStore(database.db);
        await thisNode.refresh();

        const created = await otherNode.create('auditor', 'other node');

        expect(await thisNode.verify(created.key)).toEqual({ id: created.id, role: 'auditor' });
      });

      it('honours a revocation by another store after refresh', async () => {
        const thisNode = new ApiKeyStore(database.db);
        const otherNode = new ApiKeyStore(database.db);
        const created = await otherNode.create('pep', 'other node');
        expect(await thisNode.verify(created.key)).not.toBeNull();

        await otherNode.revoke(created.id);
        await thisNode.refresh();

        expect(await thisNode.verify(created.key)).toBeNull();
      });

      it('keeps keys across a restart', async () => {
        let active = { id: '', key: '' };
        let revoked = { id: '', key: '' };

        await acrossRestart(
          async (db) => {
            const keys = new ApiKeyStore(db);
            active = await keys.create('pep', 'active');
            revoked = await keys.create('pep', 'revoked');
            await keys.revoke(revoked.id);
          },
          async (db) => {
            const after = new ApiKeyStore(db);
            expect(await after.verify(active.key)).toEqual({ id: active.id, role: 'pep' });
            expect(await after.verify(revoked.key)).toBeNull();
            await after.refresh();
            expect(await after.verify(active.key)).toEqual({ id: active.id, role: 'pep' });
            expect(await after.verify(revoked.key)).toBeNull();
          },
        );
      });
    });
  },
);
