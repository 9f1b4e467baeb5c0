/**
 * The MCP endpoint as an OAuth protected resource: its metadata (RFC 9728) and the bearer
 * checks (RFC 6750) that run before any MCP message is read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  exchangedToken,
  GITHUB_MCP,
  type GatewayTestEnvironment,
  identityToken,
  startGatewayEnvironment,
  auditEventsAfter,
  lastAuditSeq,
} from './support.js';

let environment: GatewayTestEnvironment;
let issuer: string;
let challengeBase: string;

beforeAll(async () => {
  environment = await startGatewayEnvironment();
  issuer = environment.acme.url;
  challengeBase = `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp"`;
});

afterAll(async () => {
  await environment?.close();
});

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'gateway-test', version: '1.0.0' },
  },
};

/** Posts a JSON-RPC message to /mcp with the given extra headers. */
async function postMcp(headers: Record<string, string>, message: unknown) {
  const response = await fetch(`${issuer}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(message),
  });
  const text = await response.text();
  return {
    status: response.status,
    challenge: response.headers.get('www-authenticate'),
    session: response.headers.get('mcp-session-id'),
    text,
  };
}

async function postInitialize(headers: Record<string, string>) {
  return await postMcp(headers, INITIALIZE);
}

async function gatewayTokenWithScope(
  scope: string,
  placement: Record<string, string> = { channel: 'C02ENG', invoker: 'U01ALICE' },
): Promise<string> {
  const identity = await identityToken(environment, placement);
  return await exchangedToken(environment, identity, `${issuer}/mcp`, scope);
}

describe('protected resource metadata', () => {
  for (const path of ['/.well-known/oauth-protected-resource/mcp']) {
    it(`is served at ${path}`, async () => {
      const response = await fetch(`${issuer}${path}`);

      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(await response.json()).toEqual({
        resource: `${issuer}/mcp`,
        authorization_servers: [issuer],
        scopes_supported: ['mcp', 'proxy'],
        bearer_methods_supported: ['header'],
        resource_name: 'Deputy gateway',
      });
    });
  }

  it('is not served at the root, which would name another resource', async () => {
    const response = await fetch(`${issuer}/.well-known/oauth-protected-resource`);

    expect(response.status).toBe(404);
  });

  it('rejects another path under it', async () => {
    const response = await fetch(`${issuer}/.well-known/oauth-protected-resource/proxy`);

    expect(response.status).toBe(404);
  });
});

describe('MCP endpoint bearer check', () => {
  it('records a failed authentication', async () => {
    const before = await lastAuditSeq(environment);

    await postInitialize({ authorization: 'Bearer not.a.token' });

    const events = (await auditEventsAfter(environment, before)).filter(
      (event) => event.type === 'auth.failure',
    );
    expect(events.map((event) => [event.actor, event.detail])).toEqual([
      [
        { type: 'agent', id: 'anonymous' },
        { problem: 'invalid_token', status: 401, endpoint: 'mcp' },
      ],
    ]);
    expect(JSON.stringify(events)).not.toContain('not.a.token');
  });

  it('rejects a request without a token', async () => {
    const reply = await postInitialize({});

    expect(reply.status).toBe(401);
    expect(reply.challenge).toBe(challengeBase);
    expect(JSON.parse(reply.text)).toEqual({
      error: 'invalid_token',
      error_description: 'an access token is required',
    });
  });

  it('rejects a garbage token', async () => {
    const reply = await postInitialize({ authorization: 'Bearer not.a.token' });

    expect(reply.status).toBe(401);
    expect(reply.challenge).toBe(
      `${challengeBase}, error="invalid_token", ` +
        'error_description="the access token is invalid, expired or revoked"',
    );
  });

  it('rejects a token for another audience', async () => {
    const identity = await identityToken(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });
    const github = await exchangedToken(environment, identity, GITHUB_MCP, 'repo.read');

    const reply = await postInitialize({ authorization: `Bearer ${github}` });

    expect(reply.status).toBe(401);
    expect(reply.challenge).toBe(
      `${challengeBase}, error="invalid_token", ` +
        'error_description="the access token is invalid, expired or revoked"',
    );
  });

  it('rejects an identity token', async () => {
    const identity = await identityToken(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });

    const reply = await postInitialize({ authorization: `Bearer ${identity}` });

    expect(reply.status).toBe(401);
    expect(reply.challenge).toBe(
      `${challengeBase}, error="invalid_token", ` +
        'error_description="the access token is invalid, expired or revoked"',
    );
  });

  it('rejects a token without scope mcp', async () => {
    const proxyOnly = await gatewayTokenWithScope('proxy');

    const reply = await postInitialize({ authorization: `Bearer ${proxyOnly}` });

    expect(reply.status).toBe(403);
    expect(reply.challenge).toBe(
      `${challengeBase}, error="insufficient_scope", ` +
        'error_description="the access token lacks scope mcp", scope="mcp"',
    );
    expect(JSON.parse(reply.text)).toEqual({
      error: 'insufficient_scope',
      error_description: 'the access token lacks scope mcp',
    });
  });

  it('accepts a token with scope mcp', async () => {
    const token = await gatewayTokenWithScope('mcp');

    const reply = await postInitialize({ authorization: `Bearer ${token}` });

    expect(reply.status).toBe(200);
    expect(reply.challenge).toBeNull();
  });
});

describe('MCP endpoint Origin check', () => {
  it('rejects a foreign Origin', async () => {
    const token = await gatewayTokenWithScope('mcp proxy');

    const reply = await postInitialize({
      authorization: `Bearer ${token}`,
      origin: 'https://evil.example',
    });

    expect(reply.status).toBe(403);
    expect(JSON.parse(reply.text)).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, message: 'Origin https://evil.example is not allowed' },
    });
  });

  it("rejects the issuer's host on another port", async () => {
    const token = await gatewayTokenWithScope('mcp proxy');

    const reply = await postInitialize({
      authorization: `Bearer ${token}`,
      origin: 'http://127.0.0.1:1',
    });

    expect(reply.status).toBe(403);
  });

  it("accepts the issuer's own Origin", async () => {
    const token = await gatewayTokenWithScope('mcp proxy');

    const reply = await postInitialize({ authorization: `Bearer ${token}`, origin: issuer });

    expect(reply.status).toBe(200);
  });
});

describe('2025-11-25 session', () => {
  const legal = { channel: 'C04LEGAL', invoker: 'U03CAROL' };
  const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' };

  async function openSession(token: string): Promise<string> {
    const opened = await postInitialize({ authorization: `Bearer ${token}` });
    expect(opened.status).toBe(200);
    expect(opened.session).toMatch(/^[0-9a-f-]{36}$/);
    return opened.session!;
  }

  function inSession(token: string, session: string) {
    return {
      authorization: `Bearer ${token}`,
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-11-25',
    };
  }

  it('continues with a new token of its identity', async () => {
    const session = await openSession(await gatewayTokenWithScope('mcp', legal));
    const renewed = await gatewayTokenWithScope('mcp', legal);

    const reply = await postMcp(inSession(renewed, session), toolsList);

    expect(reply.status).toBe(200);
    expect(reply.text).toContain('"files__read_text_file"');
  });

  it("is not found for another identity's token", async () => {
    const session = await openSession(await gatewayTokenWithScope('mcp', legal));
    const general = await gatewayTokenWithScope('mcp', { channel: 'C01GENERAL' });

    const reply = await postMcp(inSession(general, session), toolsList);

    expect(reply.status).toBe(404);
    expect(JSON.parse(reply.text)).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32001, message: 'Session not found' },
    });
  });

  it('is not found for another invoker', async () => {
    const engineering = { channel: 'C02ENG', invoker: 'U01ALICE' };
    const session = await openSession(await gatewayTokenWithScope('mcp', engineering));
    const bob = await gatewayTokenWithScope('mcp', { channel: 'C02ENG', invoker: 'U02BOB' });

    const reply = await postMcp(inSession(bob, session), toolsList);

    expect(reply.status).toBe(404);
  });
});
