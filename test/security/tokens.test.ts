/**
 * Ways to keep a token or client assertion alive after it should have died. The cases are a
 * disabled runtime client, a replayed assertion, an agent deleted and re-created or disabled
 * by a plain edit, and a policy file applied over the kill switch.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as oauth from 'oauth4webapi';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';

import { Deputy } from '../../src/deputy.js';
import { keepDisabled } from '../../src/kill-switch.js';
import {
  accessToken,
  GITHUB_MCP,
  identityToken,
  INSECURE,
  introspect,
  type OAuthHarness,
  readAcme,
  readReply,
  registerClient,
  requestIdentityToken,
  type Runtime,
  startOAuthHarness,
  waitPastSecond,
} from '../oauth/harness.js';

const INACTIVE = { active: false };
const WORKSPACE_PATH = '/admin/v1/workspaces/acme';

let harness: OAuthHarness;
let runtime: Runtime;

beforeEach(async () => {
  harness = await startOAuthHarness();
  runtime = await registerClient(harness, 'helper', 'client_secret_basic');
});

afterEach(async () => {
  await harness.close();
});

/** Issues an identity token for helper in C02ENG and an access token exchanged from it. */
async function issueTokens() {
  const identity = await identityToken(harness, runtime, {
    channel: 'C02ENG',
    invoker: 'U01ALICE',
  });
  const access = await accessToken(harness, runtime, identity, {
    resource: GITHUB_MCP,
    scope: 'repo.read',
  });
  return { identity, access };
}

/** Introspects `token` with the pep API key, as a resource server does. */
async function introspectAsServer(token: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${harness.issuer}/oauth/introspect`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${harness.keys.pep}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token }),
  });
  return (await readReply(harness, response)).body;
}

/** Sends an admin API request, with `If-Match` set to the current revision for writes. */
async function admin(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${harness.keys.admin}` };
  if (method !== 'GET') {
    const current = await harness.deputy.revisions.current('acme');
    headers['if-match'] = `"${current!.revision}"`;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${harness.issuer}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return await readReply(harness, response);
}

describe('disabled runtime client', () => {
  it('makes its tokens inactive', async () => {
    const { identity, access } = await issueTokens();
    expect((await introspectAsServer(identity)).active).toBe(true);
    expect((await introspectAsServer(access)).active).toBe(true);

    const path = `${WORKSPACE_PATH}/agents/helper/clients/${runtime.client.client_id}`;
    const deleted = await admin('DELETE', path);

    expect(deleted.status).toBe(204);
    expect(await introspectAsServer(identity)).toEqual(INACTIVE);
    expect(await introspectAsServer(access)).toEqual(INACTIVE);
  });

  it('cannot get new tokens', async () => {
    const path = `${WORKSPACE_PATH}/agents/helper/clients/${runtime.client.client_id}`;
    await admin('DELETE', path);

    const reply = await requestIdentityToken(harness, runtime, { channel: 'C02ENG' });

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'client authentication failed',
    });
  });

  it('spares tokens of other clients', async () => {
    const other = await registerClient(harness, 'helper', 'client_secret_basic');
    const otherToken = await identityToken(harness, other, { channel: 'C02ENG' });

    await admin('DELETE', `${WORKSPACE_PATH}/agents/helper/clients/${runtime.client.client_id}`);

    expect((await introspect(harness, other, otherToken)).body.active).toBe(true);
  });
});

describe('client assertion replay', () => {
  it('is rejected before and after exp', async () => {
    const keyed = await registerClient(harness, 'helper', 'private_key_jwt');
    let exp = 0;
    const shortLived = oauth.PrivateKeyJwt(keyed.key!, {
      [oauth.modifyAssertion]: (_header, payload) => {
        exp = (payload.iat as number) + 2;
        payload.exp = exp;
      },
    });
    let sent: URLSearchParams | undefined;
    const first = await oauth.clientCredentialsGrantRequest(
      harness.as,
      keyed.client,
      shortLived,
      { channel: 'C02ENG' },
      {
        ...INSECURE,
        [oauth.customFetch]: async (url, options) => {
          sent = new URLSearchParams(options.body);
          return await fetch(url, options);
        },
      },
    );
    expect(first.status).toBe(200);
    const replay = async () => {
      const response = await fetch(harness.as.token_endpoint!, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: sent,
      });
      return await readReply(harness, response);
    };

    // Past exp but inside the 5-second clock tolerance the assertion still verifies, so only
    // the stored jti stops it.
    await waitPastSecond(exp);
    const withinTolerance = await replay();
    // Six seconds past exp it is expired.
    await waitPastSecond(exp + 5);
    const late = await replay();

    expect(withinTolerance.status).toBe(401);
    expect(withinTolerance.body).toEqual({
      error: 'invalid_client',
      error_description: 'the client assertion was already used',
    });
    expect(late.status).toBe(401);
    expect(late.body).toEqual({
      error: 'invalid_client',
      error_description: 'client assertion rejected: ERR_TOKEN_EXPIRED',
    });
  }, 20_000);
});

describe('agent edits', () => {
  it('delete and re-create keeps old tokens inactive', async () => {
    const { identity, access } = await issueTokens();
    const agent = (await admin('GET', `${WORKSPACE_PATH}/agents/helper`)).body;

    const deleted = await admin('DELETE', `${WORKSPACE_PATH}/agents/helper`);
    const created = await admin('PUT', `${WORKSPACE_PATH}/agents/helper`, agent);

    expect(deleted.status).toBe(200);
    expect(created.status).toBe(201);
    expect(created.body.item).toEqual(agent);
    expect(await introspectAsServer(identity)).toEqual(INACTIVE);
    expect(await introspectAsServer(access)).toEqual(INACTIVE);

    // The removed agent's runtime client went with it.
    const refused = await requestIdentityToken(harness, runtime, { channel: 'C02ENG' });
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({
      error: 'invalid_client',
      error_description: 'client authentication failed',
    });

    // The re-created agent works with a client of its own: tokens issued after the
    // revocation's second are active.
    await waitPastSecond(Math.floor(Date.now() / 1000));
    runtime = await registerClient(harness, 'helper', 'client_secret_basic');
    const fresh = await issueTokens();
    expect((await introspect(harness, runtime, fresh.access)).body.active).toBe(true);
    expect(await introspectAsServer(identity)).toEqual(INACTIVE);
  });

  it('status disabled by PUT revokes tokens', async () => {
    const { identity, access } = await issueTokens();
    const agent = (await admin('GET', `${WORKSPACE_PATH}/agents/helper`)).body;

    const disabled = await admin('PUT', `${WORKSPACE_PATH}/agents/helper`, {
      ...agent,
      status: 'disabled',
    });

    expect(disabled.status).toBe(200);
    expect(await introspectAsServer(identity)).toEqual(INACTIVE);
    expect(await introspectAsServer(access)).toEqual(INACTIVE);
    const issued = await requestIdentityToken(harness, runtime, { channel: 'C02ENG' });
    expect(issued.body).toEqual({
      error: 'invalid_grant',
      error_description: 'no identity token: agent_disabled',
    });
  });

  it('re-enabling by PUT keeps old tokens inactive', async () => {
    const { identity, access } = await issueTokens();
    const agent = (await admin('GET', `${WORKSPACE_PATH}/agents/helper`)).body;

    await admin('PUT', `${WORKSPACE_PATH}/agents/helper`, { ...agent, status: 'disabled' });
    const enabled = await admin('PUT', `${WORKSPACE_PATH}/agents/helper`, agent);

    expect(enabled.status).toBe(200);
    expect(await introspectAsServer(identity)).toEqual(INACTIVE);
    expect(await introspectAsServer(access)).toEqual(INACTIVE);
  });

  it('disabled identity by PUT revokes its tokens', async () => {
    const legal = await identityToken(harness, runtime, {
      channel: 'C04LEGAL',
      invoker: 'U03CAROL',
    });
    const engineering = await identityToken(harness, runtime, { channel: 'C02ENG' });
    const agent = (await admin('GET', `${WORKSPACE_PATH}/agents/helper`)).body;

    const edited = await admin('PUT', `${WORKSPACE_PATH}/agents/helper`, {
      ...agent,
      disabled_identities: ['agent:helper/channel:C04LEGAL'],
    });

    expect(edited.status).toBe(200);
    expect(await introspectAsServer(legal)).toEqual(INACTIVE);
    expect((await introspectAsServer(engineering)).active).toBe(true);
  });

  it('delete alone revokes tokens', async () => {
    const { identity, access } = await issueTokens();

    const deleted = await admin('DELETE', `${WORKSPACE_PATH}/agents/helper`);

    expect(deleted.status).toBe(200);
    expect(await introspectAsServer(identity)).toEqual(INACTIVE);
    expect(await introspectAsServer(access)).toEqual(INACTIVE);
    // The removed agent's runtime client is disabled with it.
    const issued = await requestIdentityToken(harness, runtime, { channel: 'C02ENG' });
    expect(issued.body).toEqual({
      error: 'invalid_client',
      error_description: 'client authentication failed',
    });
  });
});

describe('policy file over the kill switch', () => {
  it('keepDisabled keeps the agent and identity', () => {
    const current = readAcme();
    current.agents[0]!.status = 'disabled';
    current.agents[0]!.disabled_identities = ['agent:helper/channel:C04LEGAL'];

    const { policy, kept } = keepDisabled(current, readAcme());

    expect(kept).toEqual(['agent:helper', 'agent:helper/channel:C04LEGAL']);
    expect(policy.agents[0]!.status).toBe('disabled');
    expect(policy.agents[0]!.disabled_identities).toEqual(['agent:helper/channel:C04LEGAL']);
  });
});

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ACME = 'examples/acme/deputy.yaml';

/** Runs the built `deputy` command from the repository root with no DEPUTY_* variables. */
function deputyCli(...args: string[]): Promise<{ code: number | null; stdout: string }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, USER: 'security-test' };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'deputy.js'), ...args], {
      cwd: ROOT,
      env,
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

/** Reads helper's status in the stored current revision of `acme`. */
async function storedHelperStatus(dataDir: string): Promise<string | undefined> {
  const deputy = await Deputy.open({
    database: join(dataDir, 'deputy.db'),
    dataDir,
    logger: pino({ level: 'silent' }),
    refreshIntervalMs: 0,
  });
  try {
    const current = await deputy.revisions.current('acme');
    return current?.policy.agents.find((agent) => agent.id === 'helper')?.status;
  } finally {
    await deputy.close();
  }
}

describe('deputy apply after the kill switch', () => {
  function tempDir(context: TestContext): string {
    const dir = mkdtempSync(join(tmpdir(), 'deputy-security-'));
    context.onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  it('keeps the agent disabled', async (context) => {
    const dataDir = tempDir(context);
    expect((await deputyCli('apply', '-c', ACME, '--data-dir', dataDir)).code).toBe(0);
    const disabled = await deputyCli(
      'agents',
      'disable',
      'helper',
      '-w',
      'acme',
      '--data-dir',
      dataDir,
    );
    expect(disabled.stdout).toBe('disabled agent helper in revision 2\n');

    const applied = await deputyCli('apply', '-c', ACME, '--data-dir', dataDir);

    expect(applied.code).toBe(0);
    expect(applied.stdout).toBe(
      'kept disabled by the kill switch: agent:helper ' +
        '(pass --allow-enable, or run deputy agents enable)\n' +
        'workspace acme is already at revision 2: no changes\n',
    );
    expect(await storedHelperStatus(dataDir)).toBe('disabled');
  });

  it('enables it with --allow-enable', async (context) => {
    const dataDir = tempDir(context);
    await deputyCli('apply', '-c', ACME, '--data-dir', dataDir);
    await deputyCli('agents', 'disable', 'helper', '-w', 'acme', '--data-dir', dataDir);

    const applied = await deputyCli('apply', '-c', ACME, '--data-dir', dataDir, '--allow-enable');

    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain('applied as revision 3');
    expect(applied.stdout).not.toContain('kept disabled');
    expect(await storedHelperStatus(dataDir)).toBe('active');
  });
});
