/**
 * The admin REST API on every storage backend: workspaces and their entries with ETag
 * concurrency, attachments, revisions, write-only connection secrets and the live
 * connection test against a loopback HTTP server.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { Policy } from '../../src/model/policy.js';
import { testBackends, type TestDatabase } from '../support/databases.js';
import { auditEventsAfter, type Harness, readAcme, startHarness } from './harness.js';

const backends = await testBackends();

/** Returns the acme example under another workspace id, so each test owns its workspace. */
function acmeAs(id: string): Policy {
  const policy = readAcme();
  policy.workspace.id = id;
  return policy;
}

/** The example with every credential `stored`, the only kind the admin API may create. */
function storedAcmeAs(id: string): Policy {
  const policy = acmeAs(id);
  for (const connection of policy.connections) {
    if (connection.credential) connection.credential.secret = 'stored';
  }
  return policy;
}

/** A loopback HTTP server that records the headers of every request it receives. */
interface Upstream {
  port: number;
  requests: IncomingHttpHeaders[];
  close(): Promise<void>;
}

async function startUpstream(expectedAuthorization: string): Promise<Upstream> {
  const requests: IncomingHttpHeaders[] = [];
  const server: Server = createServer((request, response) => {
    requests.push(request.headers);
    response.statusCode = request.headers.authorization === expectedAuthorization ? 200 : 401;
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(backends.map((backend) => [backend.name, backend] as const))(
  'admin API on %s',
  (_name, backend) => {
    let handle: TestDatabase;
    let harness: Harness;
    /** Every response body of the current test, to prove a secret never leaves. */
    let bodies: string[];

    beforeAll(async () => {
      handle = await backend.open();
      // Deputy opens the database itself, so the helper's handle only creates and removes it.
      await handle.close();
      harness = await startHarness({ database: handle.location, policy: null });
    });

    afterAll(async () => {
      await harness.close();
      await handle.destroy();
    });

    beforeEach(() => {
      bodies = [];
    });

    async function send(
      method: 'GET' | 'POST' | 'PUT' | 'DELETE',
      url: string,
      options: { payload?: unknown; ifMatch?: string; key?: string } = {},
    ) {
      const headers: Record<string, string> = {
        authorization: `Bearer ${options.key ?? harness.keys.admin}`,
      };
      if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
      const response = await harness.app.inject({
        method,
        url,
        headers,
        ...(options.payload === undefined ? {} : { payload: options.payload as object }),
      });
      bodies.push(response.body);
      return response;
    }

    /** Creates a workspace the way a host does, since it has env: and file: credentials. */
    async function createWorkspace(id: string): Promise<Policy> {
      const policy = acmeAs(id);
      await harness.deputy.apply(policy, 0, 'test setup', {
        actor: { type: 'cli', id: 'test' },
        requestId: null,
      });
      return policy;
    }

    async function createThroughApi(id: string): Promise<Policy> {
      const policy = storedAcmeAs(id);
      const response = await send('POST', '/admin/v1/workspaces', { payload: policy });
      expect(response.statusCode).toBe(201);
      return policy;
    }

    async function revisionNumbers(workspace: string): Promise<number[]> {
      const response = await send('GET', `/admin/v1/workspaces/${workspace}/revisions`);
      return (response.json().revisions as { revision: number }[]).map((item) => item.revision);
    }

    async function decide(workspace: string, channel: string, action: string, resource: string) {
      const colon = resource.indexOf(':');
      const response = await harness.app.inject({
        method: 'POST',
        url: '/access/v1/evaluation',
        headers: { authorization: `Bearer ${harness.keys.pep}` },
        payload: {
          subject: { type: 'agent', id: 'helper', properties: { workspace, channel } },
          action: { name: action },
          resource: { type: resource.slice(0, colon), id: resource.slice(colon + 1) },
        },
      });
      expect(response.statusCode).toBe(200);
      return response.json() as { decision: boolean; context: Record<string, unknown> };
    }

    describe('workspaces', () => {
      it('creates a workspace and serves it with an ETag', async () => {
        const policy = storedAcmeAs('create');

        const created = await send('POST', '/admin/v1/workspaces', { payload: policy });

        expect(created.statusCode).toBe(201);
        expect(created.headers.etag).toBe('"1"');
        expect(created.json()).toEqual({ workspace: 'create', revision: 1 });
        const read = await send('GET', '/admin/v1/workspaces/create');
        expect(read.statusCode).toBe(200);
        expect(read.headers.etag).toBe('"1"');
        expect(read.json()).toEqual({ revision: 1, policy });
      });

      it('rejects creating an existing workspace', async () => {
        await createWorkspace('twice');

        const again = await send('POST', '/admin/v1/workspaces', {
          payload: storedAcmeAs('twice'),
        });

        expect(again.statusCode).toBe(409);
        expect(again.json()).toMatchObject({ error: 'conflict', current_revision: 1 });
        expect(await revisionNumbers('twice')).toEqual([1]);
      });

      it('rejects an invalid policy naming the field', async () => {
        const policy = acmeAs('invalid') as unknown as { agents: Record<string, unknown>[] };
        policy.agents[0]!.status = 'sleeping';

        const response = await send('POST', '/admin/v1/workspaces', { payload: policy });

        expect(response.statusCode).toBe(400);
        expect(response.json()).toEqual({
          error: 'invalid_request',
          error_description: 'invalid policy document',
          issues: [
            {
              path: 'agents[0].status',
              message: expect.stringContaining('disabled'),
              fix: expect.any(String),
            },
          ],
        });
        expect((await send('GET', '/admin/v1/workspaces/invalid')).statusCode).toBe(404);
      });

      it('rejects env: and file: credentials', async () => {
        const response = await send('POST', '/admin/v1/workspaces', { payload: acmeAs('host') });

        expect(response.statusCode).toBe(400);
        expect(response.json().error_description).toBe(
          'connection github: env: and file: credentials, and where they are sent, can only ' +
            'be changed in a policy file applied with deputy apply; use stored through the API',
        );
        expect((await send('GET', '/admin/v1/workspaces/host')).statusCode).toBe(404);
      });

      it('rejects a policy without a workspace', async () => {
        const response = await send('POST', '/admin/v1/workspaces', { payload: { version: 1 } });

        expect(response.statusCode).toBe(400);
        expect(response.json().issues).toEqual([
          { path: 'workspace', message: 'missing required key', fix: 'add workspace' },
        ]);
      });

      it('replaces a whole policy with If-Match', async () => {
        const policy = await createWorkspace('replace-all');
        policy.workspace.name = 'Acme Renamed';

        const response = await send('PUT', '/admin/v1/workspaces/replace-all', {
          payload: policy,
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(200);
        expect(response.headers.etag).toBe('"2"');
        expect(response.json()).toEqual({ revision: 2 });
        expect((await send('GET', '/admin/v1/workspaces/replace-all')).json()).toEqual({
          revision: 2,
          policy,
        });
      });

      it('rejects a whole policy for another workspace', async () => {
        await createWorkspace('replace-other');

        const response = await send('PUT', '/admin/v1/workspaces/replace-other', {
          payload: acmeAs('someone-else'),
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(400);
        expect(response.json().error_description).toBe(
          'workspace.id must be replace-other, the workspace in the URL',
        );
        expect(await revisionNumbers('replace-other')).toEqual([1]);
        expect((await send('GET', '/admin/v1/workspaces/someone-else')).statusCode).toBe(404);
      });

      it('returns 404 for an unknown workspace', async () => {
        const response = await send('GET', '/admin/v1/workspaces/nowhere');

        expect(response.statusCode).toBe(404);
        expect(response.json()).toEqual({
          error: 'not_found',
          error_description: 'workspace nowhere not found',
        });
      });

      it('forbids pep and auditor keys', async () => {
        await createWorkspace('roles');

        for (const key of [harness.keys.pep, harness.keys.auditor]) {
          const response = await send('GET', '/admin/v1/workspaces/roles', { key });
          expect(response.statusCode).toBe(403);
          expect(response.json()).toEqual({
            error: 'forbidden',
            error_description: 'this endpoint needs the admin role',
          });
        }
      });
    });

    describe('entries', () => {
      it('requires If-Match', async () => {
        await createWorkspace('no-if-match');

        const response = await send('PUT', '/admin/v1/workspaces/no-if-match/agents/scout', {
          payload: { status: 'active' },
        });

        expect(response.statusCode).toBe(428);
        expect(response.json().error).toBe('precondition_required');
        expect(await revisionNumbers('no-if-match')).toEqual([1]);
      });

      it('rejects a malformed If-Match', async () => {
        await createWorkspace('bad-if-match');

        const response = await send('PUT', '/admin/v1/workspaces/bad-if-match/agents/scout', {
          payload: { status: 'active' },
          ifMatch: '*',
        });

        expect(response.statusCode).toBe(400);
        expect(await revisionNumbers('bad-if-match')).toEqual([1]);
      });

      it('creates an entry with the current ETag', async () => {
        await createWorkspace('create-entry');

        const response = await send('PUT', '/admin/v1/workspaces/create-entry/agents/scout', {
          payload: { status: 'active' },
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(201);
        expect(response.headers.etag).toBe('"2"');
        expect(response.json()).toEqual({
          revision: 2,
          item: { id: 'scout', status: 'active', disabled_identities: [] },
        });
        const read = await send('GET', '/admin/v1/workspaces/create-entry/agents/scout');
        expect(read.headers.etag).toBe('"2"');
        expect(read.json()).toEqual({ id: 'scout', status: 'active', disabled_identities: [] });
      });

      it('replaces an entry and the engine follows', async () => {
        await createWorkspace('replace');
        expect((await decide('replace', 'C02ENG', 'repo.read', 'repo:acme/api')).decision).toBe(
          true,
        );

        const response = await send('PUT', '/admin/v1/workspaces/replace/agents/helper', {
          payload: { name: 'Acme Helper', status: 'disabled' },
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(200);
        expect(response.headers.etag).toBe('"2"');
        expect(response.json()).toEqual({
          revision: 2,
          item: { id: 'helper', name: 'Acme Helper', status: 'disabled', disabled_identities: [] },
        });
        const after = await decide('replace', 'C02ENG', 'repo.read', 'repo:acme/api');
        expect(after.decision).toBe(false);
        expect(after.context.reason).toBe('agent_disabled');
        expect(after.context.revision).toBe(2);
      });

      it('rejects a stale If-Match and keeps the policy', async () => {
        await createWorkspace('stale');
        const first = await send('PUT', '/admin/v1/workspaces/stale/agents/scout', {
          payload: { status: 'active' },
          ifMatch: '"1"',
        });
        expect(first.statusCode).toBe(201);
        const stored = (await send('GET', '/admin/v1/workspaces/stale')).json();

        const stale = await send('PUT', '/admin/v1/workspaces/stale/agents/scout', {
          payload: { status: 'disabled' },
          ifMatch: '"1"',
        });

        expect(stale.statusCode).toBe(409);
        expect(stale.json()).toEqual({
          error: 'conflict',
          error_description:
            'workspace stale is at revision 2, not 1: reload it and apply the change again',
          current_revision: 2,
        });
        const after = await send('GET', '/admin/v1/workspaces/stale');
        expect(after.headers.etag).toBe('"2"');
        expect(after.json()).toEqual(stored);
        expect(await revisionNumbers('stale')).toEqual([1, 2]);
      });

      it('rejects a body id that differs from the URL', async () => {
        await createWorkspace('id-mismatch');

        const response = await send('PUT', '/admin/v1/workspaces/id-mismatch/agents/scout', {
          payload: { id: 'other', status: 'active' },
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(400);
        expect(response.json().error_description).toBe(
          'id in the body must be scout, the id in the URL, or be left out',
        );
        expect(await revisionNumbers('id-mismatch')).toEqual([1]);
      });

      it('rejects an invalid entry naming the field', async () => {
        await createWorkspace('bad-entry');

        const response = await send('PUT', '/admin/v1/workspaces/bad-entry/agents/scout', {
          payload: { status: 'sleeping' },
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(400);
        expect(response.json()).toEqual({
          error: 'invalid_request',
          error_description: 'the change would make the policy invalid',
          issues: [
            {
              path: 'agents[1].status',
              message: expect.stringContaining('active'),
              fix: expect.any(String),
            },
          ],
        });
        expect(await revisionNumbers('bad-entry')).toEqual([1]);
      });

      it('rejects an unknown collection', async () => {
        await createWorkspace('collection');

        const response = await send('PUT', '/admin/v1/workspaces/collection/widgets/x', {
          payload: {},
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(400);
        expect(response.json().issues[0].path).toBe('params.collection');
      });

      it('deletes an unreferenced entry', async () => {
        await createWorkspace('delete');

        const response = await send('DELETE', '/admin/v1/workspaces/delete/guardrails/no-payroll', {
          ifMatch: '"1"',
        });

        expect(response.statusCode).toBe(200);
        expect(response.headers.etag).toBe('"2"');
        expect(response.json()).toEqual({ revision: 2 });
        const read = await send('GET', '/admin/v1/workspaces/delete/guardrails/no-payroll');
        expect(read.statusCode).toBe(404);
      });

      it('rejects deleting a bundle still attached', async () => {
        const policy = await createWorkspace('referenced');

        const response = await send(
          'DELETE',
          '/admin/v1/workspaces/referenced/bundles/engineering',
          { ifMatch: '"1"' },
        );

        expect(response.statusCode).toBe(400);
        expect(response.json()).toEqual({
          error: 'invalid_request',
          error_description: 'the change would make the policy invalid',
          issues: [
            {
              path: 'scopes.channels[1].bundles[0].bundle',
              message: 'unknown bundle "engineering"',
              fix: expect.any(String),
            },
            {
              path: 'scopes.channels[5].bundles[0].bundle',
              message: 'unknown bundle "engineering"',
              fix: expect.any(String),
            },
          ],
        });
        const after = await send('GET', '/admin/v1/workspaces/referenced');
        expect(after.headers.etag).toBe('"1"');
        expect(after.json()).toEqual({ revision: 1, policy });
        expect(await revisionNumbers('referenced')).toEqual([1]);
      });

      it('lets exactly one of 10 parallel writes win', async () => {
        await createWorkspace('race');

        const responses = await Promise.all(
          Array.from({ length: 10 }, (_, index) =>
            send('PUT', `/admin/v1/workspaces/race/agents/racer-${index}`, {
              payload: { status: 'active' },
              ifMatch: '"1"',
            }),
          ),
        );

        const statuses = responses.map((response) => response.statusCode);
        expect(statuses.filter((status) => status >= 200 && status < 300)).toEqual([201]);
        expect(statuses.filter((status) => status === 409)).toHaveLength(9);
        expect(await revisionNumbers('race')).toEqual([1, 2]);
        const agents = (await send('GET', '/admin/v1/workspaces/race/agents')).json().items;
        expect(agents.map((agent: { id: string }) => agent.id)).toHaveLength(2);
      });
    });

    describe('attachments', () => {
      const ORDERS = 'table:analytics/public/orders';

      it('attaches and detaches a bundle', async () => {
        await createWorkspace('attach');
        const before = await decide('attach', 'C01GENERAL', 'table.read', ORDERS);
        expect(before.context.reason).toBe('no_matching_grant');

        const attached = await send(
          'PUT',
          '/admin/v1/workspaces/attach/attachments/C01GENERAL/analytics',
          { payload: {}, ifMatch: '"1"' },
        );

        expect(attached.statusCode).toBe(200);
        expect(attached.headers.etag).toBe('"2"');
        expect(attached.json()).toEqual({ revision: 2, attachment: { bundle: 'analytics' } });
        const allowed = await decide('attach', 'C01GENERAL', 'table.read', ORDERS);
        expect(allowed.decision).toBe(true);
        expect(allowed.context.attachment).toBe('channel:C01GENERAL/analytics');

        const detached = await send(
          'DELETE',
          '/admin/v1/workspaces/attach/attachments/C01GENERAL/analytics',
          { ifMatch: '"2"' },
        );

        expect(detached.statusCode).toBe(200);
        expect(detached.json()).toEqual({ revision: 3 });
        const after = await decide('attach', 'C01GENERAL', 'table.read', ORDERS);
        expect(after.context.reason).toBe('no_matching_grant');
        const again = await send(
          'DELETE',
          '/admin/v1/workspaces/attach/attachments/C01GENERAL/analytics',
          { ifMatch: '"3"' },
        );
        expect(again.statusCode).toBe(404);
      });

      it('grants a time-boxed attachment only until its end', async () => {
        await createWorkspace('timebox');
        const ended = new Date(Date.now() - 60_000).toISOString();
        const future = new Date(Date.now() + 3_600_000).toISOString();

        const past = await send(
          'PUT',
          '/admin/v1/workspaces/timebox/attachments/C01GENERAL/analytics',
          { payload: { until: ended }, ifMatch: '"1"' },
        );

        expect(past.statusCode).toBe(200);
        expect(past.json()).toEqual({
          revision: 2,
          attachment: { bundle: 'analytics', until: ended },
        });
        const denied = await decide('timebox', 'C01GENERAL', 'table.read', ORDERS);
        expect(denied.context.reason).toBe('no_matching_grant');

        const extended = await send(
          'PUT',
          '/admin/v1/workspaces/timebox/attachments/C01GENERAL/analytics',
          { payload: { until: future }, ifMatch: '"2"' },
        );

        expect(extended.statusCode).toBe(200);
        const allowed = await decide('timebox', 'C01GENERAL', 'table.read', ORDERS);
        expect(allowed.decision).toBe(true);
        const channels = (await send('GET', '/admin/v1/workspaces/timebox/channels')).json();
        const general = channels.items.find((item: { id: string }) => item.id === 'C01GENERAL');
        expect(general.bundles).toEqual([{ bundle: 'analytics', until: future }]);
      });

      it('limits an attachment to the agents named', async () => {
        await createWorkspace('agents-only');
        const added = await send('PUT', '/admin/v1/workspaces/agents-only/agents/scout', {
          payload: { status: 'active' },
          ifMatch: '"1"',
        });
        expect(added.statusCode).toBe(201);

        const response = await send(
          'PUT',
          '/admin/v1/workspaces/agents-only/attachments/C01GENERAL/analytics',
          { payload: { agents: ['scout'] }, ifMatch: '"2"' },
        );

        expect(response.statusCode).toBe(200);
        const helper = await decide('agents-only', 'C01GENERAL', 'table.read', ORDERS);
        expect(helper.context.reason).toBe('no_matching_grant');
      });

      it('rejects an end that is not a date', async () => {
        await createWorkspace('bad-until');

        const response = await send(
          'PUT',
          '/admin/v1/workspaces/bad-until/attachments/C01GENERAL/analytics',
          { payload: { until: 'tomorrow' }, ifMatch: '"1"' },
        );

        expect(response.statusCode).toBe(400);
        expect(response.json().issues).toEqual([
          {
            path: 'scopes.channels[0].bundles[0].until',
            message: expect.any(String),
            fix: expect.any(String),
          },
        ]);
        expect(await revisionNumbers('bad-until')).toEqual([1]);
      });

      it('rejects an unknown bundle', async () => {
        await createWorkspace('unknown-bundle');

        const response = await send(
          'PUT',
          '/admin/v1/workspaces/unknown-bundle/attachments/C01GENERAL/nope',
          { payload: {}, ifMatch: '"1"' },
        );

        expect(response.statusCode).toBe(400);
        expect(response.json().issues[0]).toMatchObject({
          path: 'scopes.channels[0].bundles[0].bundle',
          message: 'unknown bundle "nope"',
        });
      });

      it('rejects an unknown scope', async () => {
        await createWorkspace('unknown-scope');

        const response = await send(
          'PUT',
          '/admin/v1/workspaces/unknown-scope/attachments/C99/analytics',
          { payload: {}, ifMatch: '"1"' },
        );

        expect(response.statusCode).toBe(404);
        expect(response.json().error_description).toBe(
          'scope C99 not found: use workspace or a channel id',
        );
      });

      it('rejects an unknown attachment field', async () => {
        await createWorkspace('extra-field');

        const response = await send(
          'PUT',
          '/admin/v1/workspaces/extra-field/attachments/C01GENERAL/analytics',
          { payload: { expires: '2030-01-01T00:00:00Z' }, ifMatch: '"1"' },
        );

        expect(response.statusCode).toBe(400);
        expect(response.json().error_description).toContain('expires');
        expect(await revisionNumbers('extra-field')).toEqual([1]);
      });

      // The issue path of a problem at the top of the body is printed as `body.`.
      it('names a body-level issue path body', async () => {
        await createWorkspace('body-path');

        const response = await send(
          'PUT',
          '/admin/v1/workspaces/body-path/attachments/C01GENERAL/analytics',
          { payload: { expires: '2030-01-01T00:00:00Z' }, ifMatch: '"1"' },
        );

        expect(response.json().issues[0].path).toMatch(/^body(\.expires)?$/);
      });
    });

    describe('revisions', () => {
      it('lists every revision with its actor and summary', async () => {
        const policy = await createThroughApi('history');
        await send('PUT', '/admin/v1/workspaces/history/agents/scout', {
          payload: { status: 'active' },
          ifMatch: '"1"',
        });
        await send('DELETE', '/admin/v1/workspaces/history/agents/scout', { ifMatch: '"2"' });

        const response = await send('GET', '/admin/v1/workspaces/history/revisions');

        expect(response.statusCode).toBe(200);
        const actor = `api_key:${harness.keyIds.admin}`;
        expect(response.json()).toEqual({
          revisions: [
            { workspace: 'history', revision: 1, actor, summary: 'create workspace' },
            { workspace: 'history', revision: 2, actor, summary: 'put agents scout' },
            { workspace: 'history', revision: 3, actor, summary: 'delete agents scout' },
          ].map((item) => ({ ...item, createdAt: expect.any(String) })),
        });
        const first = await send('GET', '/admin/v1/workspaces/history/revisions/1');
        expect(first.statusCode).toBe(200);
        expect(first.json()).toMatchObject({ revision: 1, policy });
        const missing = await send('GET', '/admin/v1/workspaces/history/revisions/9');
        expect(missing.statusCode).toBe(404);
      });

      it('records each change as an audit event', async () => {
        await createThroughApi('audited');

        const events = await auditEventsAfter(harness.deputy);
        const changes = events.filter(
          (event) => event.type === 'admin.change' && event.workspace === 'audited',
        );

        expect(changes).toHaveLength(1);
        expect(changes[0]).toMatchObject({
          actor: { type: 'api_key', id: harness.keyIds.admin },
          revision: 1,
          detail: { summary: 'create workspace', previous_revision: 0 },
        });
      });
    });

    describe('connection secrets', () => {
      const SECRET = 'sk-live-7Qw9xZ2mP4rT8vB1nL6cY3hJ5dF0gK';

      afterEach(() => {
        for (const body of bodies) expect(body).not.toContain(SECRET);
      });

      /** Dumps every row of the tables as one string to search for the secret. */
      async function databaseDump(): Promise<string> {
        const db = harness.deputy.database.db;
        const tables = ['revisions', 'api_keys', 'secrets', 'audit_events'] as const;
        const rows = await Promise.all(
          tables.map((table) => db.selectFrom(table).selectAll().execute()),
        );
        return JSON.stringify(rows);
      }

      it('stores a secret that is never returned', async () => {
        await createWorkspace('secret');
        const unset = await send('GET', '/admin/v1/workspaces/secret/connections/crm/secret');
        expect(unset.json()).toEqual({ set: false, updated_at: null });

        const put = await send('PUT', '/admin/v1/workspaces/secret/connections/crm/secret', {
          payload: { value: SECRET },
        });

        expect(put.statusCode).toBe(204);
        expect(put.body).toBe('');
        const read = await send('GET', '/admin/v1/workspaces/secret/connections/crm/secret');
        expect(read.statusCode).toBe(200);
        expect(read.json()).toEqual({
          set: true,
          updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        });
        expect(Object.keys(read.json()).sort()).toEqual(['set', 'updated_at']);
        expect(await harness.deputy.secrets.reveal('secret', 'crm')).toBe(SECRET);
      });

      it('keeps the secret out of the database and audit log', async () => {
        await createWorkspace('sealed');

        await send('PUT', '/admin/v1/workspaces/sealed/connections/crm/secret', {
          payload: { value: SECRET },
        });

        const rows = await harness.deputy.database.db
          .selectFrom('secrets')
          .selectAll()
          .where('workspace', '=', 'sealed')
          .execute();
        expect(rows).toHaveLength(1);
        const sealed = rows[0]!.sealed;
        expect(sealed).not.toContain(SECRET);
        expect(sealed).not.toContain(Buffer.from(SECRET).toString('base64'));
        expect(sealed).not.toContain(Buffer.from(SECRET).toString('base64url'));
        expect(sealed).not.toContain(Buffer.from(SECRET).toString('hex'));
        expect(await databaseDump()).not.toContain(SECRET);
        const events = await auditEventsAfter(harness.deputy);
        const set = events.filter(
          (event) => event.type === 'secret.set' && event.workspace === 'sealed',
        );
        expect(set).toHaveLength(1);
        expect(set[0]).toMatchObject({
          actor: { type: 'api_key', id: harness.keyIds.admin },
          connection: 'crm',
          detail: null,
        });
        expect(JSON.stringify(events)).not.toContain(SECRET);
      });

      it('rejects a secret for an env: or file: connection', async () => {
        await createWorkspace('not-stored');

        for (const connection of ['github', 'warehouse']) {
          const url = `/admin/v1/workspaces/not-stored/connections/${connection}/secret`;
          const response = await send('PUT', url, { payload: { value: SECRET } });
          expect(response.statusCode).toBe(409);
          expect(response.json()).toEqual({
            error: 'conflict',
            error_description: `connection ${connection} does not read a stored secret: set credential.secret to stored first`,
          });
          expect((await send('GET', url)).json()).toEqual({ set: false, updated_at: null });
        }
        expect(await databaseDump()).not.toContain(SECRET);
      });

      it('rejects a secret for an unknown connection', async () => {
        await createWorkspace('no-connection');

        const response = await send(
          'PUT',
          '/admin/v1/workspaces/no-connection/connections/nope/secret',
          { payload: { value: SECRET } },
        );

        expect(response.statusCode).toBe(404);
      });

      it('rejects an empty secret or extra fields', async () => {
        await createWorkspace('bad-secret');
        const url = '/admin/v1/workspaces/bad-secret/connections/crm/secret';

        const empty = await send('PUT', url, { payload: { value: '' } });
        const extra = await send('PUT', url, { payload: { value: SECRET, note: 'x' } });

        expect(empty.statusCode).toBe(400);
        expect(empty.json().issues[0].path).toBe('body.value');
        expect(extra.statusCode).toBe(400);
        expect((await send('GET', url)).json()).toEqual({ set: false, updated_at: null });
      });

      describe('connection test', () => {
        let upstream: Upstream;

        beforeAll(async () => {
          upstream = await startUpstream(`Bearer ${SECRET}`);
        });

        afterAll(async () => {
          await upstream.close();
        });

        beforeEach(() => {
          upstream.requests.length = 0;
        });

        /** Creates a workspace whose `probe` connection points at `url`. */
        async function createProbe(workspace: string, url: string, hosts: string[]) {
          await createWorkspace(workspace);
          const response = await send(
            'PUT',
            `/admin/v1/workspaces/${workspace}/connections/probe`,
            {
              payload: {
                kind: 'http',
                url,
                hosts,
                credential: { secret: 'stored', scheme: 'bearer' },
              },
              ifMatch: '"1"',
            },
          );
          expect(response.statusCode).toBe(201);
        }

        it('sends the stored secret as a bearer token', async () => {
          const host = `127.0.0.1:${upstream.port}`;
          await createProbe('probe-ok', `http://${host}/health`, [host]);
          await send('PUT', '/admin/v1/workspaces/probe-ok/connections/probe/secret', {
            payload: { value: SECRET },
          });

          const response = await send(
            'POST',
            '/admin/v1/workspaces/probe-ok/connections/probe/test',
          );

          expect(response.statusCode).toBe(200);
          expect(response.json()).toEqual({
            ok: true,
            status: 200,
            latency_ms: expect.any(Number),
            error: null,
          });
          expect(upstream.requests).toHaveLength(1);
          expect(upstream.requests[0]!.authorization).toBe(`Bearer ${SECRET}`);
          const events = await auditEventsAfter(harness.deputy);
          const tests = events.filter(
            (event) => event.type === 'connection.test' && event.workspace === 'probe-ok',
          );
          expect(tests).toHaveLength(1);
          expect(tests[0]).toMatchObject({
            connection: 'probe',
            detail: { ok: true, status: 200, error: null },
          });
        });

        it('reports the status a wrong secret gets', async () => {
          const host = `127.0.0.1:${upstream.port}`;
          await createProbe('probe-401', `http://${host}/health`, [host]);
          await send('PUT', '/admin/v1/workspaces/probe-401/connections/probe/secret', {
            payload: { value: 'not-the-right-token' },
          });

          const response = await send(
            'POST',
            '/admin/v1/workspaces/probe-401/connections/probe/test',
          );

          expect(response.json()).toEqual({
            ok: false,
            status: 401,
            latency_ms: expect.any(Number),
            error: 'HTTP 401',
          });
          expect(upstream.requests).toHaveLength(1);
        });

        it('reports a missing secret without a request', async () => {
          const host = `127.0.0.1:${upstream.port}`;
          await createProbe('probe-unset', `http://${host}/health`, [host]);

          const response = await send(
            'POST',
            '/admin/v1/workspaces/probe-unset/connections/probe/test',
          );

          expect(response.json()).toMatchObject({ ok: false, status: null });
          expect(response.json().error).toContain('no secret stored');
          expect(upstream.requests).toHaveLength(0);
        });

        it('sends nothing to a host outside hosts', async () => {
          const host = `127.0.0.1:${upstream.port}`;
          await createProbe('probe-host', `http://${host}/health`, ['api.example.com']);
          await send('PUT', '/admin/v1/workspaces/probe-host/connections/probe/secret', {
            payload: { value: SECRET },
          });

          const response = await send(
            'POST',
            '/admin/v1/workspaces/probe-host/connections/probe/test',
          );

          expect(response.statusCode).toBe(200);
          expect(response.json()).toEqual({
            ok: false,
            status: null,
            latency_ms: expect.any(Number),
            error: `host ${host} is not in the connection's hosts`,
          });
          expect(upstream.requests).toHaveLength(0);
        });
      });
    });
  },
);
