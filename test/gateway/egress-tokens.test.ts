/**
 * Tests of who may use the egress proxy. A missing, malformed, foreign, under-scoped or revoked
 * token is rejected with the RFC 6750 status and challenge, and the kill switch stops a token
 * that worked a moment before. These tests disable the agent, so they have their own
 * environment and run in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  blocked,
  type EgressEnvironment,
  exchange,
  proxyToken,
  type RawRequest,
  responses,
  startEgressEnvironment,
  tokenEndpoint,
  tokensWithScope,
} from './egress-support.js';

let env: EgressEnvironment;
let sales: string;
let metadataUrl: string;

beforeAll(async () => {
  env = await startEgressEnvironment();
  sales = await proxyToken(env, { channel: 'C05SALES', invoker: 'U04DAVE' });
  metadataUrl = `${env.acme.url}/.well-known/oauth-protected-resource/mcp`;
});

afterAll(async () => {
  await env?.close();
});

const GLOBEX = '/proxy/crm/api/accounts/globex';
/** Option for exchanges whose authentication fails, which leave no http.request record. */
const UNAUDITED = { audited: false };

async function adminPost(path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${env.acme.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.acme.adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

describe('tokens', () => {
  it('challenges a request without one', async () => {
    const result = await exchange(env, { target: GLOBEX }, undefined, UNAUDITED);
    expect(result.response.status).toBe(401);
    expect(result.response.headers['www-authenticate']).toBe(
      `Bearer resource_metadata="${metadataUrl}"`,
    );
    expect(result.body).toEqual({
      error: 'invalid_token',
      error_description: 'an access token is required',
    });
    expect(result.reached).toEqual([]);
  });

  it.each([
    [
      'a Basic credential',
      'Basic dXNlcjpwYXNz',
      400,
      'invalid_request',
      'the Authorization header must be Bearer <token>',
    ],
    [
      'a bare token',
      'not-a-scheme',
      400,
      'invalid_request',
      'the Authorization header must be Bearer <token>',
    ],
    [
      'a made-up token',
      'Bearer abc.def.ghi',
      401,
      'invalid_token',
      'the access token is invalid, expired or revoked',
    ],
  ])('rejects %s', async (_, authorization, status, error, description) => {
    const result = await exchange(
      env,
      { target: GLOBEX, headers: { authorization } },
      undefined,
      UNAUDITED,
    );
    expect(result.response.status).toBe(status);
    expect(result.response.headers['www-authenticate']).toBe(
      `Bearer resource_metadata="${metadataUrl}", error="${error}", error_description="${description}"`,
    );
    expect(result.body).toEqual({ error, error_description: description });
    expect(result.reached).toEqual([]);
  });

  it('rejects a malformed Proxy-Authorization', async () => {
    const result = await exchange(
      env,
      {
        target: `http://127.0.0.1:${env.crmPort}/api/accounts/globex`,
        headers: { 'proxy-authorization': 'Basic dXNlcjpwYXNz' },
      },
      undefined,
      UNAUDITED,
    );
    expect(result.response.status).toBe(400);
    expect(result.body).toMatchObject({ error: 'invalid_request' });
    expect(result.reached).toEqual([]);
  });

  it('ignores Proxy-Authorization in route mode', async () => {
    const result = await exchange(
      env,
      { target: GLOBEX, headers: { 'proxy-authorization': `Bearer ${sales}` } },
      undefined,
      UNAUDITED,
    );
    expect(result.response.status).toBe(401);
    expect(result.reached).toEqual([]);
  });

  it('requires the proxy scope', async () => {
    const { access } = await tokensWithScope(
      env,
      { channel: 'C05SALES', invoker: 'U04DAVE' },
      'mcp',
    );
    const challenge =
      `Bearer resource_metadata="${metadataUrl}", error="insufficient_scope", ` +
      'error_description="the access token lacks scope proxy", scope="proxy"';
    // A token sent as Proxy-Authorization is challenged with Proxy-Authenticate.
    const requests: Array<[RawRequest, string]> = [
      [{ target: GLOBEX, headers: { authorization: `Bearer ${access}` } }, 'www-authenticate'],
      [
        {
          target: `http://127.0.0.1:${env.crmPort}/api/accounts/globex`,
          headers: { 'proxy-authorization': `Bearer ${access}` },
        },
        'proxy-authenticate',
      ],
    ];
    for (const [raw, header] of requests) {
      const result = await exchange(env, raw, undefined, UNAUDITED);
      expect(result.response.status).toBe(403);
      expect(result.response.headers[header]).toBe(challenge);
      expect(result.body).toEqual({
        error: 'insufficient_scope',
        error_description: 'the access token lacks scope proxy',
      });
      expect(result.reached).toEqual([]);
    }
  });

  it('rejects an identity token', async () => {
    const { identity } = await tokensWithScope(
      env,
      { channel: 'C05SALES', invoker: 'U04DAVE' },
      'mcp proxy',
    );
    const result = await exchange(
      env,
      { target: GLOBEX, headers: { authorization: `Bearer ${identity}` } },
      undefined,
      UNAUDITED,
    );
    expect(result.response.status).toBe(401);
    expect(result.body).toMatchObject({ error: 'invalid_token' });
    expect(result.reached).toEqual([]);
  });

  it('rejects another audience', async () => {
    const identity = await tokenEndpoint(env, {
      grant_type: 'client_credentials',
      channel: 'C05SALES',
    });
    const foreign = await tokenEndpoint(env, {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: identity.body.access_token as string,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      resource: 'https://mcp.acme.example/github',
      scope: 'repo.read',
    });
    expect(foreign.status).toBe(200);
    const result = await exchange(
      env,
      {
        target: GLOBEX,
        headers: { authorization: `Bearer ${foreign.body.access_token as string}` },
      },
      undefined,
      UNAUDITED,
    );
    expect(result.response.status).toBe(401);
    expect(result.body).toMatchObject({ error: 'invalid_token' });
    expect(result.reached).toEqual([]);
  });

  it('rejects a revoked token', async () => {
    const token = await proxyToken(env, { channel: 'C05SALES', invoker: 'U04DAVE' });
    expect(
      (await exchange(env, { target: GLOBEX, headers: { authorization: `Bearer ${token}` } }))
        .response.status,
    ).toBe(200);
    const basic = Buffer.from(`${env.acme.client.id}:${env.acme.client.secret}`).toString('base64');
    const revoked = await fetch(`${env.acme.url}/oauth/revoke`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }),
    });
    expect(revoked.status).toBe(200);

    const result = await exchange(
      env,
      { target: GLOBEX, headers: { authorization: `Bearer ${token}` } },
      undefined,
      UNAUDITED,
    );
    expect(result.response.status).toBe(401);
    expect(result.body).toEqual({
      error: 'invalid_token',
      error_description: 'the access token is invalid, expired or revoked',
    });
    expect(result.reached).toEqual([]);
  });
});

describe('the kill switch', () => {
  it('stops one disabled identity', async () => {
    const general = await proxyToken(env, { channel: 'C01GENERAL', invoker: 'U04DAVE' });
    const disabled = await adminPost('/admin/v1/workspaces/acme/agents/helper/disable', {
      identity: 'agent:helper/channel:C05SALES',
    });
    expect(disabled.status).toBe(200);

    const stopped = await exchange(
      env,
      { target: GLOBEX, headers: { authorization: `Bearer ${sales}` } },
      undefined,
      UNAUDITED,
    );
    expect(stopped.response.status).toBe(401);
    expect(stopped.body).toMatchObject({ error: 'invalid_token' });
    expect(stopped.reached).toEqual([]);

    // The token still authenticates, so the decision is what rejects the request.
    const other = await exchange(env, {
      target: GLOBEX,
      headers: { authorization: `Bearer ${general}` },
    });
    expect(other.response.status).toBe(403);
    expect(other.body).toMatchObject({ error: 'no_matching_grant' });

    const enabled = await adminPost('/admin/v1/workspaces/acme/agents/helper/enable', {
      identity: 'agent:helper/channel:C05SALES',
    });
    expect(enabled.status).toBe(200);
  });

  it('stops the agent mid-run', async () => {
    // Revocation has a resolution of one second, so tokens issued in the second of the
    // identity's revocation stay revoked. The test waits for the next second.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const token = await proxyToken(env, { channel: 'C05SALES', invoker: 'U04DAVE' });
    const before = await exchange(env, {
      target: GLOBEX,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(before.response.status).toBe(200);
    expect(before.reached).toHaveLength(1);

    const disabled = await adminPost('/admin/v1/workspaces/acme/agents/helper/disable', {});
    expect(disabled.status).toBe(200);

    const route = { target: GLOBEX, headers: { authorization: `Bearer ${token}` } };
    const forward = {
      target: `http://127.0.0.1:${env.crmPort}/api/accounts/globex`,
      headers: { 'proxy-authorization': `Bearer ${token}` },
    };
    for (const [raw, status, header] of [
      [route, 401, 'www-authenticate'],
      [forward, 407, 'proxy-authenticate'],
    ] as const) {
      const after = await exchange(env, raw, undefined, UNAUDITED);
      expect(after.response.status).toBe(status);
      expect(after.response.headers[header]).toBe(
        `Bearer resource_metadata="${metadataUrl}", error="invalid_token", ` +
          'error_description="the access token is invalid, expired or revoked"',
      );
      expect(after.body).toEqual({
        error: 'invalid_token',
        error_description: 'the access token is invalid, expired or revoked',
      });
      expect(after.reached).toEqual([]);
    }

    const rejectedToken = await tokenEndpoint(env, {
      grant_type: 'client_credentials',
      channel: 'C05SALES',
      invoker: 'U04DAVE',
    });
    expect(rejectedToken.status).toBe(400);
  });
});

describe('secrets', () => {
  it('never leak into responses', () => {
    for (const response of responses) {
      const whole = JSON.stringify(response);
      expect(whole).not.toContain(env.crmKey);
      expect(whole).not.toContain(sales);
    }
  });

  it('never leave the machine', () => {
    expect(blocked).toEqual({ connections: [], lookups: [] });
  });
});
