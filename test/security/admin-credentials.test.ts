/**
 * Connection credentials through the admin API. A network caller with an admin key must not
 * make Deputy read the host's environment or files (`env:`, `file:`), nor point a credential
 * at a new destination and have Deputy send it there.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { type Connection, connectionSchema, type Policy } from '../../src/model/policy.js';
import {
  auditEventsAfter,
  type Harness,
  lastAuditSeq,
  readAcme,
  SETUP_CALL,
  startHarness,
} from '../api/harness.js';

const SECRET = 'sk-test-4fJq8LmZ0pWc7RtY2nVb6XhK';

/** Returns the error_description of a rejected env: or file: edit of connection `id`. */
function hostReferenceMessage(id: string): string {
  return (
    `connection ${id}: env: and file: credentials, and where they are sent, can only be ` +
    'changed in a policy file applied with deputy apply; use stored through the API'
  );
}

/** A loopback HTTP server that records the headers of every request and responds 200. */
interface Upstream {
  host: string;
  requests: IncomingHttpHeaders[];
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const requests: IncomingHttpHeaders[] = [];
  const server: Server = createServer((request, response) => {
    requests.push(request.headers);
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness({ policy: null });
});

afterAll(async () => {
  await harness.close();
});

async function send(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  options: { payload?: unknown; ifMatch?: number } = {},
) {
  const headers: Record<string, string> = { authorization: `Bearer ${harness.keys.admin}` };
  if (options.ifMatch !== undefined) headers['if-match'] = `"${options.ifMatch}"`;
  return await harness.app.inject({
    method,
    url,
    headers,
    ...(options.payload === undefined ? {} : { payload: options.payload as object }),
  });
}

/** Returns the acme example as workspace `id`, with every credential `stored`. */
function storedAcme(id: string): Policy {
  const policy = readAcme();
  policy.workspace.id = id;
  for (const connection of policy.connections) {
    if (connection.credential) connection.credential.secret = 'stored';
  }
  return policy;
}

/** Creates workspace `id` from the acme example the way `deputy apply` does on the host. */
async function applyOnHost(id: string): Promise<Policy> {
  const policy = readAcme();
  policy.workspace.id = id;
  await harness.deputy.apply(policy, 0, 'test setup', SETUP_CALL);
  return policy;
}

async function storedPolicy(workspace: string): Promise<{ revision: number; policy: Policy }> {
  const current = await harness.deputy.revisions.current(workspace);
  if (!current) throw new Error(`workspace ${workspace} not found`);
  return { revision: current.revision, policy: current.policy };
}

async function secretState(workspace: string, connection: string) {
  const response = await send(
    'GET',
    `/admin/v1/workspaces/${workspace}/connections/${connection}/secret`,
  );
  expect(response.statusCode).toBe(200);
  return response.json() as { set: boolean; updated_at: string | null };
}

async function putSecret(workspace: string, connection: string, value: string) {
  const response = await send(
    'PUT',
    `/admin/v1/workspaces/${workspace}/connections/${connection}/secret`,
    { payload: { value } },
  );
  expect(response.statusCode).toBe(204);
}

/** Replaces connection `id` through the entry API, based on the current revision. */
async function putConnection(workspace: string, connection: Partial<Connection> & { id: string }) {
  const { revision } = await storedPolicy(workspace);
  return await send('PUT', `/admin/v1/workspaces/${workspace}/connections/${connection.id}`, {
    payload: connection,
    ifMatch: revision,
  });
}

describe('env: and file: through the API', () => {
  it.each([
    ['file:/etc/hostname', 'file-secret'],
    ['env:HOME', 'env-secret'],
  ])('rejects a new connection reading %s', async (secret, workspace) => {
    const policy = storedAcme(workspace);
    policy.connections.push(
      connectionSchema.parse({
        id: 'probe',
        kind: 'http',
        url: 'https://probe.example',
        hosts: ['probe.example'],
        credential: { secret, scheme: 'bearer' },
      }),
    );

    const response = await send('POST', '/admin/v1/workspaces', { payload: policy });

    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: 'invalid_request',
      error_description: hostReferenceMessage('probe'),
    });
    expect(await harness.deputy.revisions.current(workspace)).toBeNull();
  });

  it.each([
    ['file:/etc/hostname', 'file-entry'],
    ['env:HOME', 'env-entry'],
  ])('rejects an entry PUT reading %s', async (secret, workspace) => {
    await applyOnHost(workspace);
    const before = await storedPolicy(workspace);

    const response = await putConnection(workspace, {
      id: 'probe',
      kind: 'http',
      url: 'https://probe.example',
      hosts: ['probe.example'],
      credential: { secret, scheme: 'bearer' },
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().error_description).toBe(hostReferenceMessage('probe'));
    expect(await storedPolicy(workspace)).toEqual(before);
  });

  it('rejects switching a stored connection to env:', async () => {
    await send('POST', '/admin/v1/workspaces', { payload: storedAcme('switch') });
    const before = await storedPolicy('switch');
    const crm = before.policy.connections.find((entry) => entry.id === 'crm')!;

    const response = await putConnection('switch', {
      ...crm,
      credential: { ...crm.credential!, secret: 'env:HOME' },
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().error_description).toBe(hostReferenceMessage('crm'));
    expect(await storedPolicy('switch')).toEqual(before);
  });

  it('rejects a relative file: path', async () => {
    const policy = storedAcme('relative');
    policy.connections[2]!.credential!.secret = 'file:relative/path';

    const response = await send('POST', '/admin/v1/workspaces', { payload: policy });

    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: 'invalid_request',
      error_description: 'invalid policy document',
      issues: [
        {
          path: 'connections[2].credential.secret',
          message: 'inline secrets are not allowed in the configuration',
          fix:
            'write env:NAME to read an environment variable, file:/ABSOLUTE/PATH to read a ' +
            'file, or stored to use a value set through the admin API',
        },
      ],
    });
    expect(JSON.stringify(response.json())).not.toContain('relative/path');
  });

  it('rejects a url with user and password', async () => {
    const policy = storedAcme('userinfo');
    policy.connections[2]!.url = 'https://deputy:hunter2@crm.acme.example/api';

    const response = await send('POST', '/admin/v1/workspaces', { payload: policy });

    expect(response.statusCode).toBe(400);
    expect(response.json().issues).toEqual([
      {
        path: 'connections[2].url',
        message: 'url must be an absolute URL without a user name or password in it',
        fix: 'put the credential under credential, as a reference',
      },
    ]);
    expect(JSON.stringify(response.json())).not.toContain('hunter2');
    expect(await harness.deputy.revisions.current('userinfo')).toBeNull();
  });
});

describe('destination of an env: or file: connection', () => {
  const edits: [string, (connection: Connection) => Connection][] = [
    ['url', (connection) => ({ ...connection, url: 'https://api.github.com.evil.example' })],
    ['hosts', (connection) => ({ ...connection, hosts: [...connection.hosts, 'evil.example'] })],
    [
      'scheme',
      (connection) => ({
        ...connection,
        credential: { ...connection.credential!, scheme: 'query' },
      }),
    ],
  ];

  it.each(edits)('rejects a change of %s', async (field, edit) => {
    const workspace = `move-${field}`;
    await applyOnHost(workspace);
    const before = await storedPolicy(workspace);

    // warehouse is a stdio MCP server, which has no url to move.
    for (const id of field === 'url' ? ['github'] : ['github', 'warehouse']) {
      const connection = before.policy.connections.find((entry) => entry.id === id)!;
      const response = await putConnection(workspace, edit(connection));

      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual({
        error: 'invalid_request',
        error_description: hostReferenceMessage(id),
      });
    }
    expect(await storedPolicy(workspace)).toEqual(before);
  });

  it('rejects a whole-policy PUT that moves it', async () => {
    await applyOnHost('move-policy');
    const before = await storedPolicy('move-policy');
    const edited = structuredClone(before.policy);
    edited.connections[0]!.hosts = ['evil.example'];

    const response = await send('PUT', '/admin/v1/workspaces/move-policy', {
      payload: edited,
      ifMatch: before.revision,
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().error_description).toBe(hostReferenceMessage('github'));
    expect(await storedPolicy('move-policy')).toEqual(before);
  });

  it('accepts an edit that keeps it in place', async () => {
    await applyOnHost('keep');
    const before = await storedPolicy('keep');
    const github = before.policy.connections[0]!;

    const response = await putConnection('keep', { ...github, description: 'renamed' });

    expect(response.statusCode).toBe(200);
    expect((await storedPolicy('keep')).policy.connections[0]).toEqual({
      ...github,
      description: 'renamed',
    });
  });
});

describe('stored secrets', () => {
  let original: Upstream;
  let attacker: Upstream;

  beforeAll(async () => {
    original = await startUpstream();
    attacker = await startUpstream();
  });

  afterAll(async () => {
    await original.close();
    await attacker.close();
  });

  beforeEach(() => {
    original.requests.length = 0;
    attacker.requests.length = 0;
  });

  /** Creates workspace `id` whose `probe` connection sends a stored bearer secret to `host`. */
  async function createProbe(id: string, host: string) {
    await send('POST', '/admin/v1/workspaces', { payload: storedAcme(id) });
    const response = await putConnection(id, {
      id: 'probe',
      kind: 'http',
      url: `http://${host}/health`,
      hosts: [host],
      credential: { secret: 'stored', scheme: 'bearer' },
    });
    expect(response.statusCode).toBe(201);
    await putSecret(id, 'probe', SECRET);
  }

  it('deletes the secret when hosts change', async () => {
    await createProbe('moved', original.host);
    const after = await lastAuditSeq(harness.deputy);
    const probe = (await storedPolicy('moved')).policy.connections.find(
      (entry) => entry.id === 'probe',
    )!;

    const response = await putConnection('moved', {
      ...probe,
      hosts: [original.host, 'x.example'],
    });

    expect(response.statusCode).toBe(200);
    expect(await secretState('moved', 'probe')).toEqual({ set: false, updated_at: null });
    expect(await harness.deputy.secrets.reveal('moved', 'probe')).toBeNull();
    const deletes = (await auditEventsAfter(harness.deputy, after)).filter(
      (event) => event.type === 'secret.delete',
    );
    expect(deletes).toHaveLength(1);
    expect(deletes[0]).toMatchObject({
      workspace: 'moved',
      connection: 'probe',
      actor: { type: 'api_key', id: harness.keyIds.admin },
      detail: { reason: 'connection destination changed' },
    });
  });

  it('deletes the secret when the url changes', async () => {
    await createProbe('repointed', original.host);
    const probe = (await storedPolicy('repointed')).policy.connections.find(
      (entry) => entry.id === 'probe',
    )!;

    const response = await putConnection('repointed', {
      ...probe,
      url: `http://${original.host}/other`,
    });

    expect(response.statusCode).toBe(200);
    expect(await secretState('repointed', 'probe')).toEqual({ set: false, updated_at: null });
  });

  it('keeps the secret for an edit in place', async () => {
    await createProbe('in-place', original.host);
    const probe = (await storedPolicy('in-place')).policy.connections.find(
      (entry) => entry.id === 'probe',
    )!;

    const response = await putConnection('in-place', { ...probe, description: 'health check' });

    expect(response.statusCode).toBe(200);
    expect((await secretState('in-place', 'probe')).set).toBe(true);
  });

  it('sends nothing to the new host', async () => {
    await createProbe('redirected', original.host);
    const test = () => send('POST', '/admin/v1/workspaces/redirected/connections/probe/test');
    expect((await test()).json()).toMatchObject({ ok: true, status: 200 });
    expect(original.requests).toHaveLength(1);
    expect(original.requests[0]!.authorization).toBe(`Bearer ${SECRET}`);
    const probe = (await storedPolicy('redirected')).policy.connections.find(
      (entry) => entry.id === 'probe',
    )!;

    const moved = await putConnection('redirected', {
      ...probe,
      url: `http://${attacker.host}/collect`,
      hosts: [attacker.host],
    });
    const response = await test();

    expect(moved.statusCode).toBe(200);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      ok: false,
      status: null,
      latency_ms: 0,
      error:
        'connection probe: no secret stored; set it with PUT ' +
        '/admin/v1/workspaces/redirected/connections/probe/secret',
    });
    expect(attacker.requests).toEqual([]);
    expect(original.requests).toHaveLength(1);
  });

  // Known bug: the edit makes the new destination current before it deletes the secret, so a
  // connection test that runs in between sends the old secret to the new host. The wrapper
  // below only pins that interleaving. Without it, 30 concurrent tests beside the edit leaked
  // the secret in 8 of 20 rounds in one local run on SQLite.
  it('sends nothing to the new host mid-edit', async () => {
    await createProbe('mid-edit', original.host);
    const probe = (await storedPolicy('mid-edit')).policy.connections.find(
      (entry) => entry.id === 'probe',
    )!;
    const audit = harness.deputy.audit;
    const append = audit.append.bind(audit);
    const tests: unknown[] = [];
    audit.append = async (record) => {
      if (record.type === 'secret.delete') {
        const response = await send('POST', '/admin/v1/workspaces/mid-edit/connections/probe/test');
        tests.push(response.json());
      }
      return await append(record);
    };

    try {
      const moved = await putConnection('mid-edit', {
        ...probe,
        url: `http://${attacker.host}/collect`,
        hosts: [attacker.host],
      });
      expect(moved.statusCode).toBe(200);
    } finally {
      audit.append = append;
    }

    expect(tests).toHaveLength(1);
    expect(attacker.requests).toEqual([]);
  });

  it('forgets the secret of a deleted connection', async () => {
    await createProbe('recreated', original.host);
    const probe = (await storedPolicy('recreated')).policy.connections.find(
      (entry) => entry.id === 'probe',
    )!;
    const after = await lastAuditSeq(harness.deputy);

    const deleted = await send('DELETE', '/admin/v1/workspaces/recreated/connections/probe', {
      ifMatch: (await storedPolicy('recreated')).revision,
    });
    const created = await putConnection('recreated', probe);

    expect(deleted.statusCode).toBe(200);
    expect(created.statusCode).toBe(201);
    expect(await secretState('recreated', 'probe')).toEqual({ set: false, updated_at: null });
    const deletes = (await auditEventsAfter(harness.deputy, after)).filter(
      (event) => event.type === 'secret.delete',
    );
    expect(deletes.map((event) => event.detail)).toEqual([{ reason: 'connection removed' }]);
  });

  it('forgets the secret after a whole-policy PUT drops it', async () => {
    await createProbe('replaced', original.host);
    const before = await storedPolicy('replaced');
    const without = structuredClone(before.policy);
    without.connections = without.connections.filter((entry) => entry.id !== 'probe');
    const probe = before.policy.connections.find((entry) => entry.id === 'probe')!;

    const dropped = await send('PUT', '/admin/v1/workspaces/replaced', {
      payload: without,
      ifMatch: before.revision,
    });
    const created = await putConnection('replaced', probe);

    expect(dropped.statusCode).toBe(200);
    expect(created.statusCode).toBe(201);
    expect(await secretState('replaced', 'probe')).toEqual({ set: false, updated_at: null });
  });
});
