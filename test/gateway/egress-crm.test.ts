/**
 * Tests of the egress proxy in front of the acme CRM, in route and forward-proxy mode. They
 * check what the CRM receives, which requests are rejected with which code, and the audit log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  auditEventsAfter,
  blocked,
  changePolicy,
  type EgressEnvironment,
  exchange,
  httpRecord,
  proxyToken,
  type RecordCaller,
  responses,
  sendBytes,
  startEgressEnvironment,
  startUpstream,
  tokenEndpoint,
  type Upstream,
} from './egress-support.js';

let env: EgressEnvironment;
/** Token of agent helper in the private sales channel, invoked by Dave (sales). */
let sales: string;
/** Token of agent helper in the public general channel, invoked by Dave. */
let general: string;
let crmHost: string;
/** Loopback server that no connection names, so nothing may reach it. */
let decoy: Upstream;

const SALES: RecordCaller = {
  identity: 'agent:helper/channel:C05SALES',
  invoker: 'U04DAVE',
  scope: 'channel:C05SALES',
};
const GENERAL: RecordCaller = {
  identity: 'agent:helper',
  invoker: 'U04DAVE',
  scope: 'channel:C01GENERAL',
};
/**
 * Matcher for the decision_id of an allowed request's record. One test checks its value, so
 * the other tests accept both that id and the null that the proxy writes today.
 */
const ALLOWED_DECISION_ID = expect.toSatisfy(
  (value: unknown) => value === null || typeof value === 'string',
);
const GLOBEX = { id: 'globex', name: 'Globex Corporation', owner: 'U04DAVE', arr: 120000 };

beforeAll(async () => {
  env = await startEgressEnvironment();
  crmHost = `127.0.0.1:${env.crmPort}`;
  sales = await proxyToken(env, { channel: 'C05SALES', invoker: 'U04DAVE' });
  general = await proxyToken(env, { channel: 'C01GENERAL', invoker: 'U04DAVE' });
  decoy = await startUpstream();
});

afterAll(async () => {
  await decoy?.close();
  await env?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('route mode, /proxy/crm/…', () => {
  it('forwards an allowed GET with the key', async () => {
    const result = await exchange(env, {
      target: '/proxy/crm/api/accounts/globex',
      headers: {
        ...bearer(sales),
        accept: 'application/json',
        'x-trace': 'kept',
        'x-api-key': 'caller-chosen-key',
        cookie: 'session=caller',
        'proxy-authorization': 'Basic Y2FsbGVyOnNlY3JldA==',
        'proxy-connection': 'keep-alive',
        forwarded: 'for=192.0.2.1;host=evil.example',
        'x-forwarded-for': '192.0.2.1',
        'x-forwarded-host': 'evil.example',
      },
    });

    expect(result.response.status).toBe(200);
    expect(result.body).toEqual(GLOBEX);
    expect(result.reached).toHaveLength(1);
    const [received] = result.reached;
    expect(received!.method).toBe('GET');
    expect(received!.url).toBe('/api/accounts/globex');
    expect(received!.headers).toEqual({
      host: crmHost,
      connection: 'keep-alive',
      accept: 'application/json',
      'x-trace': 'kept',
      'x-api-key': env.crmKey,
      'accept-encoding': 'identity',
    });

    const requestId = result.response.headers['x-request-id'];
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const decisions = result.events.filter((event) => event.type === 'decision');
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      decision: 'allow',
      reason: 'granted',
      action: 'crm.read',
      resource: 'crm:accounts/globex',
      bundle: 'crm',
      grant: 'crm-read',
      connection: 'crm',
      request_id: requestId,
    });
    expect(result.http).toEqual([
      httpRecord(SALES, {
        decision: 'allow',
        reason: 'granted',
        connection: 'crm',
        action: 'crm.read',
        resource: 'crm:accounts/globex',
        decisionId: ALLOWED_DECISION_ID,
        requestId,
        detail: { method: 'GET', host: crmHost, path: '/api/accounts/globex', status: 200 },
      }),
    ]);
  });

  it('links an allowed request to its decision', async () => {
    // A denied request's record carries the decision_id of its decision. An allowed one should
    // carry it as well, so that both kinds of record join their decision the same way.
    const result = await exchange(env, {
      target: '/proxy/crm/api/accounts/initech',
      headers: bearer(sales),
    });
    expect(result.response.status).toBe(200);
    const decision = result.events.find((event) => event.type === 'decision');
    expect(decision?.decision_id).toMatch(/.+/);
    expect(result.http[0]?.decision_id).toBe(decision?.decision_id);
  });

  it('denies the GET in general', async () => {
    const result = await exchange(env, {
      target: '/proxy/crm/api/accounts/globex',
      headers: bearer(general),
    });

    expect(result.response.status).toBe(403);
    expect(result.body).toEqual({
      error: 'no_matching_grant',
      error_description: 'denied: no_matching_grant',
    });
    expect(result.reached).toEqual([]);
    const decision = result.events.find((event) => event.type === 'decision');
    expect(decision).toMatchObject({ decision: 'deny', reason: 'no_matching_grant' });
    expect(result.http).toEqual([
      httpRecord(GENERAL, {
        decision: 'deny',
        reason: 'no_matching_grant',
        connection: 'crm',
        action: 'crm.read',
        resource: 'crm:accounts/globex',
        decisionId: decision!.decision_id,
        requestId: result.response.headers['x-request-id'],
        detail: { method: 'GET', host: crmHost, path: '/api/accounts/globex', status: null },
      }),
    ]);
  });

  it('forwards Dave’s PUT in sales', async () => {
    const body = JSON.stringify({ stage: 'negotiation' });
    const result = await exchange(env, {
      method: 'PUT',
      target: '/proxy/crm/api/opportunities/globex-renewal',
      headers: { ...bearer(sales), 'content-type': 'application/json' },
      body,
    });

    expect(result.response.status).toBe(200);
    expect(result.body).toEqual({ id: 'globex-renewal', account: 'globex', stage: 'negotiation' });
    expect(result.reached).toHaveLength(1);
    expect(result.reached[0]).toMatchObject({
      method: 'PUT',
      url: '/api/opportunities/globex-renewal',
      body,
    });
    expect(result.reached[0]!.headers).toEqual({
      host: crmHost,
      connection: 'keep-alive',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'x-api-key': env.crmKey,
      'accept-encoding': 'identity',
    });
    expect(result.events.find((event) => event.type === 'decision')).toMatchObject({
      decision: 'allow',
      reason: 'granted',
      grant: 'crm-write',
      invoker: 'U04DAVE',
    });
    expect(result.http).toEqual([
      httpRecord(SALES, {
        decision: 'allow',
        reason: 'granted',
        connection: 'crm',
        action: 'crm.write',
        resource: 'crm:opportunities/globex-renewal',
        decisionId: ALLOWED_DECISION_ID,
        requestId: result.response.headers['x-request-id'],
        detail: {
          method: 'PUT',
          host: crmHost,
          path: '/api/opportunities/globex-renewal',
          status: 200,
        },
      }),
    ]);
  });

  it('denies a PUT in general', async () => {
    const result = await exchange(env, {
      method: 'PUT',
      target: '/proxy/crm/api/opportunities/globex-renewal',
      headers: { ...bearer(general), 'content-type': 'application/json' },
      body: '{"stage":"lost"}',
    });
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual({
      error: 'forbidden_by_guardrail',
      error_description: 'denied: forbidden_by_guardrail',
    });
    expect(result.reached).toEqual([]);
    expect(result.events.find((event) => event.type === 'decision')?.detail).toEqual({
      guardrail: 'no-crm-writes-in-public',
    });
    expect(result.http).toHaveLength(1);
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'forbidden_by_guardrail',
      action: 'crm.write',
    });
  });

  it.each([
    ['DELETE', '/proxy/crm/api/opportunities/globex-renewal', '/api/opportunities/globex-renewal'],
    ['POST', '/proxy/crm/api/opportunities/globex-renewal', '/api/opportunities/globex-renewal'],
    ['PATCH', '/proxy/crm/api/accounts/globex', '/api/accounts/globex'],
  ])('rejects %s before deciding', async (method, target, path) => {
    const result = await exchange(env, { method, target, headers: bearer(sales), body: '' });
    expect(result.response.status).toBe(405);
    expect(result.body).toEqual({
      error: 'method_not_allowed',
      error_description: `${method} is not allowed on connection crm`,
    });
    expect(result.reached).toEqual([]);
    expect(result.events.map((event) => event.type)).toEqual(['http.request']);
    expect(result.http).toEqual([
      httpRecord(SALES, {
        decision: 'deny',
        reason: 'method_not_allowed',
        connection: 'crm',
        action: null,
        resource: null,
        requestId: result.response.headers['x-request-id'],
        detail: { method, host: crmHost, path, status: null },
      }),
    ]);
  });

  it.each([
    ['GET', '/proxy/crm/api/accounts', '/api/accounts'],
    ['GET', '/proxy/crm/api/accounts/globex/contacts', '/api/accounts/globex/contacts'],
    ['PUT', '/proxy/crm/api/accounts/globex', '/api/accounts/globex'],
  ])('rejects %s %s without a route', async (method, target, path) => {
    const result = await exchange(env, { method, target, headers: bearer(sales), body: '' });
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual({
      error: 'no_matching_route',
      error_description: `no route of connection crm matches ${method} ${path}`,
    });
    expect(result.reached).toEqual([]);
    expect(result.http).toEqual([
      httpRecord(SALES, {
        decision: 'deny',
        reason: 'no_matching_route',
        connection: 'crm',
        action: null,
        resource: null,
        requestId: result.response.headers['x-request-id'],
        detail: { method, host: crmHost, path, status: null },
      }),
    ]);
  });

  it('rejects a connection without routes', async () => {
    const result = await exchange(env, {
      target: '/proxy/github/repos/acme/handbook',
      headers: bearer(sales),
    });
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual({
      error: 'no_matching_route',
      error_description: 'no route of connection github matches GET /repos/acme/handbook',
    });
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'no_matching_route',
      connection: 'github',
      detail: expect.objectContaining({ host: 'api.github.com:443', path: '/repos/acme/handbook' }),
    });
  });

  it.each([
    [
      'an unknown connection',
      '/proxy/nope/api/accounts/globex',
      'no HTTP connection nope in this workspace',
    ],
    [
      'an MCP connection',
      '/proxy/warehouse/query',
      'no HTTP connection warehouse in this workspace',
    ],
    [
      'an encoded id that climbs',
      '/proxy/..%2Fcrm/api/accounts/globex',
      'no HTTP connection ../crm in this workspace',
    ],
  ])('returns 404 for %s', async (_, target, description) => {
    const result = await exchange(env, { target, headers: bearer(sales) });
    expect(result.response.status).toBe(404);
    expect(result.body).toEqual({ error: 'connection_not_found', error_description: description });
    expect(result.reached).toEqual([]);
    expect(result.http).toHaveLength(1);
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'connection_not_found',
      connection: null,
    });
  });

  it('rejects a malformed connection id', async () => {
    const result = await exchange(env, {
      target: '/proxy/cr%E0%A4%A/api/accounts/globex',
      headers: bearer(sales),
    });
    expect(result.response.status).toBe(400);
    expect(result.body).toMatchObject({ error: 'invalid_request' });
    expect(result.reached).toEqual([]);
    expect(result.http[0]).toMatchObject({ decision: 'deny', reason: 'invalid_request' });
  });

  describe('path tricks', () => {
    const invalid = (description: string) => ({
      status: 400,
      error: 'invalid_request',
      description,
    });
    const outside = (path: string) => ({
      status: 403,
      error: 'path_not_allowed',
      description: `${path} is not under the paths of connection crm`,
    });
    const CLIMBS = 'the path climbs above /';
    const ENCODES = 'a path segment encodes /, \\, ;, CR, LF or NUL';
    const RAW = 'the path contains CR, LF, NUL, \\ or ;';
    const PERCENT = 'the path has an invalid percent-encoding';

    it.each([
      ['/api/accounts/../../admin', outside('/admin')],
      ['/api/accounts/%2e%2e/%2e%2e/admin', outside('/admin')],
      ['/api/accounts/%2E%2E/%2E%2E/admin', outside('/admin')],
      ['/api/accounts/../../../admin', invalid(CLIMBS)],
      ['/../api/accounts/globex', invalid(CLIMBS)],
      ['/%2e%2e/api/accounts/globex', invalid(CLIMBS)],
      ['/api/accounts/..%2f..%2fadmin', invalid(ENCODES)],
      ['/api/accounts/globex%2F..%2F..%2Fadmin', invalid(ENCODES)],
      ['/api/accounts%2Fglobex', invalid(ENCODES)],
      ['/api/accounts/globex%5C..%5Cadmin', invalid(ENCODES)],
      ['/api/accounts\\globex', invalid(RAW)],
      ['/api/accounts/globex%0d%0aX-Injected:%20yes', invalid(ENCODES)],
      ['/api/accounts/globex%0AX-Injected:%20yes', invalid(ENCODES)],
      ['/api/accounts/globex%00', invalid(ENCODES)],
      ['/api/accounts/%C0%AE%C0%AE/admin', invalid(PERCENT)],
      ['/api/accounts/%', invalid(PERCENT)],
      ['/api/accountsX/globex', outside('/api/accountsX/globex')],
      ['/api/accounts-admin', outside('/api/accounts-admin')],
      ['/API/accounts/globex', outside('/API/accounts/globex')],
      ['/api/admin/users', outside('/api/admin/users')],
      ['/api', outside('/api')],
      ['', outside('/')],
      ['/', outside('/')],
    ])('%s → %o', async (path, expected) => {
      const result = await exchange(env, { target: `/proxy/crm${path}`, headers: bearer(sales) });
      expect(result.response.status).toBe(expected.status);
      expect(result.body).toEqual({
        error: expected.error,
        error_description: expected.description,
      });
      expect(result.reached).toEqual([]);
      expect(result.http).toHaveLength(1);
      expect(result.http[0]).toMatchObject({
        decision: 'deny',
        reason: expected.error,
        connection: 'crm',
        action: null,
        resource: null,
      });
    });

    it('rejects an overlong target', async () => {
      const result = await exchange(env, {
        target: `/proxy/crm/api/accounts/${'a'.repeat(20_000)}`,
        headers: bearer(sales),
      });
      expect(result.response.status).toBe(431);
      expect(result.reached).toEqual([]);
      expect(result.anyHttp).toEqual([]);
    });

    it.each([
      '/proxy/crm//api//accounts//globex',
      '/proxy/crm/api/./accounts/globex',
      '/proxy/crm/api/%2e/accounts/globex',
      '/proxy/crm/api/accounts/glob%65x',
      '/proxy/crm/api/opportunities/../accounts/globex',
    ])('normalises %s before checking', async (target) => {
      const result = await exchange(env, { target, headers: bearer(sales) });
      expect(result.response.status).toBe(200);
      expect(result.reached.map((entry) => entry.url)).toEqual(['/api/accounts/globex']);
      expect(result.http[0]).toMatchObject({
        resource: 'crm:accounts/globex',
        detail: expect.objectContaining({ path: '/api/accounts/globex' }),
      });
    });

    it('rejects * in a captured segment', async () => {
      // A capture becomes part of the resource, where * would be pattern syntax.
      const result = await exchange(env, {
        target: '/proxy/crm/api/accounts/%2A%2A',
        headers: bearer(sales),
      });
      expect(result.response.status).toBe(403);
      expect(result.body).toEqual({
        error: 'invalid_request',
        error_description: 'denied: invalid_request',
      });
      expect(result.reached).toEqual([]);
    });

    it('forwards the query, audits none', async () => {
      const result = await exchange(env, {
        target: '/proxy/crm/api/accounts/globex?fields=name&note=a%20b&email=dave%40acme.example',
        headers: bearer(sales),
      });
      expect(result.response.status).toBe(200);
      expect(result.reached.map((entry) => entry.url)).toEqual([
        '/api/accounts/globex?fields=name&note=a%20b&email=dave%40acme.example',
      ]);
      expect(result.http[0]!.detail).toMatchObject({ path: '/api/accounts/globex' });
      expect(JSON.stringify(result.events)).not.toContain('dave%40acme.example');
    });
  });

  describe('an invoker without CRM rights', () => {
    it('gets no token outside the channel', async () => {
      const identity = await tokenEndpoint(env, {
        grant_type: 'client_credentials',
        channel: 'C05SALES',
        invoker: 'U01ALICE',
      });
      expect(identity.status).toBe(400);
      expect(identity.body).toEqual({
        error: 'invalid_grant',
        error_description: 'no identity token: invoker_not_permitted',
      });
    });

    it('reads but does not write', async () => {
      await changePolicy(env.deputy, (policy) => {
        policy.scopes.channels
          .find((channel) => channel.id === 'C05SALES')!
          .members!.push('U03CAROL');
      });
      const carol = await proxyToken(env, { channel: 'C05SALES', invoker: 'U03CAROL' });
      const caller: RecordCaller = { ...SALES, invoker: 'U03CAROL' };

      const write = await exchange(env, {
        method: 'PUT',
        target: '/proxy/crm/api/opportunities/globex-renewal',
        headers: { ...bearer(carol), 'content-type': 'application/json' },
        body: '{"stage":"lost"}',
      });
      expect(write.response.status).toBe(403);
      expect(write.body).toEqual({
        error: 'invoker_lacks_permission',
        error_description: 'denied: invoker_lacks_permission',
      });
      expect(write.reached).toEqual([]);
      const decision = write.events.find((event) => event.type === 'decision');
      expect(write.http).toEqual([
        httpRecord(caller, {
          decision: 'deny',
          reason: 'invoker_lacks_permission',
          connection: 'crm',
          action: 'crm.write',
          resource: 'crm:opportunities/globex-renewal',
          decisionId: decision!.decision_id,
          requestId: write.response.headers['x-request-id'],
          detail: {
            method: 'PUT',
            host: crmHost,
            path: '/api/opportunities/globex-renewal',
            status: null,
          },
        }),
      ]);

      const read = await exchange(env, {
        target: '/proxy/crm/api/accounts/globex',
        headers: bearer(carol),
      });
      expect(read.response.status).toBe(200);
      expect(read.reached.map((entry) => entry.headers['x-api-key'])).toEqual([env.crmKey]);
    });
  });
});

describe('forward-proxy mode, GET http://127.0.0.1:<crm port>/…', () => {
  const proxyAuth = (token: string) => ({ 'proxy-authorization': `Bearer ${token}` });

  it('forwards with the key', async () => {
    const result = await exchange(env, {
      target: `http://${crmHost}/api/accounts/globex`,
      headers: {
        ...proxyAuth(sales),
        host: 'evil.example',
        authorization: 'Bearer caller-chosen',
        'x-api-key': 'caller-chosen-key',
        cookie: 'session=caller',
      },
    });

    expect(result.response.status).toBe(200);
    expect(result.body).toEqual(GLOBEX);
    expect(result.reached).toHaveLength(1);
    expect(result.reached[0]!.url).toBe('/api/accounts/globex');
    expect(result.reached[0]!.headers).toEqual({
      host: crmHost,
      connection: 'keep-alive',
      'x-api-key': env.crmKey,
      'accept-encoding': 'identity',
    });
    expect(result.http).toEqual([
      httpRecord(SALES, {
        decision: 'allow',
        reason: 'granted',
        connection: 'crm',
        action: 'crm.read',
        resource: 'crm:accounts/globex',
        decisionId: ALLOWED_DECISION_ID,
        requestId: result.response.headers['x-request-id'],
        detail: { method: 'GET', host: crmHost, path: '/api/accounts/globex', status: 200 },
      }),
    ]);
  });

  it('requires Proxy-Authorization', async () => {
    for (const headers of [{}, bearer(sales)]) {
      const result = await exchange(env, {
        target: `http://${crmHost}/api/accounts/globex`,
        headers,
      });
      expect(result.response.status).toBe(407);
      expect(result.response.headers['proxy-authenticate']).toBe(
        `Bearer resource_metadata="${env.acme.url}/.well-known/oauth-protected-resource/mcp"`,
      );
      expect(result.response.headers['www-authenticate']).toBeUndefined();
      expect(result.body).toEqual({
        error: 'invalid_token',
        error_description: 'an access token is required',
      });
      expect(result.reached).toEqual([]);
    }
  });

  it('rejects CONNECT with 405', async () => {
    const reply = await sendBytes(
      env.port,
      `CONNECT ${crmHost} HTTP/1.1\r\nHost: ${crmHost}\r\nProxy-Authorization: Bearer ${sales}\r\n\r\n`,
    );
    expect(reply).toMatch(/^HTTP\/1\.1 405 /);
    expect(reply).toContain('"error":"method_not_allowed"');
  });

  it.each([
    [
      'another port',
      () => `http://127.0.0.1:${decoy.port}/api/accounts/globex`,
      403,
      'no_matching_grant',
    ],
    [
      'the CRM by name',
      () => `http://localhost:${env.crmPort}/api/accounts/globex`,
      403,
      'no_matching_grant',
    ],
    [
      'a suffix of its address',
      () => `http://127.0.0.1.evil:${env.crmPort}/api/accounts/globex`,
      403,
      'no_matching_grant',
    ],
    ['Deputy’s own admin API', () => `${env.acme.url}/admin/v1/keys`, 403, 'no_matching_grant'],
    ['https', () => `https://${crmHost}/api/accounts/globex`, 400, 'invalid_request'],
    [
      'user information before the host',
      () => `http://${crmHost}@evil.example/api/accounts/globex`,
      400,
      'invalid_request',
    ],
    ['a user name', () => `http://user@${crmHost}/api/accounts/globex`, 400, 'invalid_request'],
    [
      'a user and password',
      () => `http://user:pass@${crmHost}/api/accounts/globex`,
      400,
      'invalid_request',
    ],
    ['an empty user', () => `http://@${crmHost}/api/accounts/globex`, 400, 'invalid_request'],
  ])('rejects %s', async (_, target, status, error) => {
    const result = await exchange(env, { target: target(), headers: proxyAuth(sales) }, [
      env.acme.crm,
      decoy,
    ]);
    expect(result.response.status).toBe(status);
    expect(result.body).toMatchObject({ error });
    expect(result.reached).toEqual([]);
    expect(result.http).toHaveLength(1);
    expect(result.http[0]).toMatchObject({ decision: 'deny', reason: error, connection: null });
  });

  it('rejects a backslash in the parser', async () => {
    // Node's HTTP parser rejects the request line before the gateway receives it.
    const result = await exchange(
      env,
      { target: `http://${crmHost}\\@evil.example/api/accounts/globex`, headers: proxyAuth(sales) },
      [env.acme.crm, decoy],
    );
    expect(result.response.status).toBe(400);
    expect(result.body).toEqual({
      error: 'Bad Request',
      message: 'Client Error',
      statusCode: 400,
    });
    expect(result.reached).toEqual([]);
    expect(result.anyHttp).toEqual([]);
  });

  it('decides other hosts as web.fetch', async () => {
    // The resource names the host only, so the port plays no part in the decision.
    const target = `http://127.0.0.1:${decoy.port}/x`;
    const result = await exchange(env, { target, headers: proxyAuth(sales) }, [decoy]);
    expect(result.response.status).toBe(403);
    expect(result.reached).toEqual([]);
    expect(result.http).toEqual([
      httpRecord(SALES, {
        decision: 'deny',
        reason: 'no_matching_grant',
        connection: null,
        action: 'web.fetch',
        resource: 'host:127.0.0.1',
        decisionId: expect.anything(),
        requestId: result.response.headers['x-request-id'],
        detail: { method: 'GET', host: `127.0.0.1:${decoy.port}`, path: '/x', status: null },
      }),
    ]);
  });

  it.each(['2130706433', '0x7f.0.0.1', '0177.0.0.1', '127.1', '0x7f000001', '127.0.0.1.'])(
    'reads http://%s as 127.0.0.1',
    async (form) => {
      const result = await exchange(env, {
        target: `http://${form}:${env.crmPort}/api/accounts/globex`,
        headers: proxyAuth(sales),
      });
      expect(result.response.status).toBe(200);
      expect(result.reached.map((entry) => [entry.url, entry.headers.host])).toEqual([
        ['/api/accounts/globex', crmHost],
      ]);
      expect(result.http[0]).toMatchObject({
        connection: 'crm',
        detail: expect.objectContaining({ host: crmHost }),
      });
    },
  );

  // A path that does not parse is rejected before the connection is looked up, so its record
  // names no connection, host or path.
  it.each([
    ['/api/accounts/../../admin', 403, 'path_not_allowed', 'crm', '/admin'],
    ['/api/accounts/%2e%2e/%2e%2e/admin', 403, 'path_not_allowed', 'crm', '/admin'],
    ['/api/accounts/..%2f..%2fadmin', 400, 'invalid_request', null, null],
    ['/api/accounts/globex%0d%0aX-Injected:%20yes', 400, 'invalid_request', null, null],
    ['/api/accountsX/globex', 403, 'path_not_allowed', 'crm', '/api/accountsX/globex'],
    ['/api/accounts', 403, 'no_matching_route', 'crm', '/api/accounts'],
  ])('rejects the path %s', async (path, status, error, connection, audited) => {
    const result = await exchange(env, {
      target: `http://${crmHost}${path}`,
      headers: proxyAuth(sales),
    });
    expect(result.response.status).toBe(status);
    expect(result.body).toMatchObject({ error });
    expect(result.reached).toEqual([]);
    expect(result.http).toHaveLength(1);
    expect(result.http[0]).toMatchObject({ decision: 'deny', reason: error, connection });
    if (audited === null) {
      expect(result.http[0]!.detail).toEqual({
        method: 'GET',
        status: null,
        latency_ms: expect.any(Number),
      });
    } else {
      expect(result.http[0]!.detail).toMatchObject({ host: crmHost, path: audited });
    }
  });

  it('rejects DELETE with 405', async () => {
    const result = await exchange(env, {
      method: 'DELETE',
      target: `http://${crmHost}/api/opportunities/globex-renewal`,
      headers: proxyAuth(sales),
    });
    expect(result.response.status).toBe(405);
    expect(result.body).toEqual({
      error: 'method_not_allowed',
      error_description: 'DELETE is not allowed on connection crm',
    });
    expect(result.reached).toEqual([]);
  });
});

describe('path parameters and a guardrail', () => {
  // Tomcat parses `;` path parameters out of each segment (CoyoteAdapter.parsePathParameters),
  // and Spring can strip `;` content from the URI (UrlPathHelper.setRemoveSemicolonContent).
  // To such an upstream the segment `initech;x=1` is `initech`, and `..;` is `..`, so a raw
  // `;` that reaches it gets around a rule on one resource.
  beforeAll(async () => {
    await changePolicy(env.deputy, (policy) => {
      policy.guardrails.push({
        id: 'no-initech-reads',
        description: 'Initech is off limits to the agent.',
        actions: ['crm.read'],
        resources: ['crm:accounts/initech'],
      });
    });
  });

  it('denies the plain path', async () => {
    const result = await exchange(env, {
      target: '/proxy/crm/api/accounts/initech',
      headers: bearer(sales),
    });
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual({
      error: 'forbidden_by_guardrail',
      error_description: 'denied: forbidden_by_guardrail',
    });
    expect(result.reached).toEqual([]);
  });

  it.each([
    '/api/accounts/initech;x=1',
    '/api/accounts/initech;',
    '/api/accounts/initech%3Bx=1',
    '/api/accounts/initech%3B',
    '/api/accounts/..;',
  ])('sends no raw ; for %s', async (path) => {
    const result = await exchange(env, { target: `/proxy/crm${path}`, headers: bearer(sales) });
    const withSemicolon = result.reached.filter((entry) => entry.url.split('?')[0]!.includes(';'));
    expect(withSemicolon.map((entry) => entry.url)).toEqual([]);
    expect(result.response.status).not.toBe(200);
  });
});

describe('secrets', () => {
  it('never leak into responses or audit', async () => {
    expect(responses.length).toBeGreaterThan(40);
    for (const response of responses) {
      const whole = JSON.stringify(response);
      expect(whole).not.toContain(env.crmKey);
      expect(whole).not.toContain(sales);
      expect(whole).not.toContain(general);
    }
    const events = await auditEventsAfter(env.deputy, 0);
    expect(events.filter((event) => event.type === 'http.request').length).toBeGreaterThan(40);
    for (const event of events) {
      const whole = JSON.stringify(event);
      expect(whole).not.toContain(env.crmKey);
      expect(whole).not.toContain(sales);
    }
  });

  it('never leave the machine', () => {
    expect(blocked).toEqual({ connections: [], lookups: [] });
  });
});
