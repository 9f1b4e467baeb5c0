/**
 * Tests of credential injection by the egress proxy. Every scheme arrives upstream as
 * specified, the caller cannot replace or add to the injected credential, and no secret is
 * returned or recorded.
 */
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  auditEventsAfter,
  blocked,
  bundle,
  changePolicy,
  connection,
  type EgressEnvironment,
  exchange,
  type ReceivedRequest,
  responses,
  startEgressEnvironment,
  startUpstream,
  tokensWithScope,
  type Upstream,
} from './egress-support.js';

type Credential = NonNullable<Parameters<typeof connection>[0]['credential']>;

/** Connections of this file: id, credential presentation, and stored secret. */
const SCHEMES: Array<{ id: string; credential: Omit<Credential, 'secret'>; secret: string }> = [
  {
    id: 's-bearer',
    credential: { scheme: 'bearer' },
    secret: `b${randomBytes(16).toString('base64url')}`,
  },
  {
    id: 's-basic',
    credential: { scheme: 'basic', username: 'svc-user' },
    secret: `p${randomBytes(16).toString('base64url')}`,
  },
  {
    id: 's-basic-nouser',
    credential: { scheme: 'basic' },
    secret: `n${randomBytes(16).toString('base64url')}`,
  },
  {
    id: 's-header',
    credential: { scheme: 'header', name: 'X-Service-Token' },
    secret: `h${randomBytes(16).toString('base64url')}`,
  },
  {
    id: 's-header-default',
    credential: { scheme: 'header' },
    secret: `d${randomBytes(16).toString('base64url')}`,
  },
  {
    id: 's-query',
    credential: { scheme: 'query', name: 'token' },
    secret: `q${randomBytes(12).toString('base64url')}+/=&#%`,
  },
  {
    id: 's-query-default',
    credential: { scheme: 'query' },
    secret: `r${randomBytes(12).toString('base64url')}`,
  },
  {
    id: 's-body',
    credential: { scheme: 'body', name: 'client_secret' },
    secret: `y${randomBytes(12).toString('base64url')}+&="`,
  },
  {
    id: 's-body-default',
    credential: { scheme: 'body' },
    secret: `z${randomBytes(12).toString('base64url')}`,
  },
];
const secretOf = (id: string) => SCHEMES.find((entry) => entry.id === id)!.secret;

let env: EgressEnvironment;
let token: string;
const upstreams = new Map<string, Upstream>();

beforeAll(async () => {
  env = await startEgressEnvironment();
  for (const { id } of SCHEMES) {
    upstreams.set(
      id,
      await startUpstream((request, response) => {
        response.writeHead(200, {
          'content-type': 'application/json',
          'set-cookie': 'upstream-session=1',
          'proxy-authenticate': 'Basic realm="upstream"',
          'www-authenticate': 'Bearer realm="upstream"',
          'x-upstream': id,
        });
        response.end(JSON.stringify({ ok: true, method: request.method }));
      }),
    );
  }
  for (const id of ['s-missing', 's-password']) upstreams.set(id, await startUpstream());

  await changePolicy(env.deputy, (policy) => {
    const routes = [
      { methods: ['*'], path: '/v1/{item}', action: 'svc.call', resource: 'svc:items/{item}' },
    ];
    const target = (id: string) => {
      const upstream = upstreams.get(id)!;
      return {
        url: upstream.origin,
        hosts: [`127.0.0.1:${upstream.port}`],
        allow_addresses: ['loopback' as const],
      };
    };
    for (const { id, credential } of SCHEMES) {
      policy.connections.push(
        connection({
          id,
          kind: 'http',
          ...target(id),
          credential: { secret: 'stored', ...credential },
          routes,
        }),
      );
    }
    policy.connections.push(
      connection({
        id: 's-missing',
        kind: 'http',
        ...target('s-missing'),
        credential: { secret: 'stored' },
        routes,
      }),
      connection({
        id: 's-password',
        kind: 'http',
        ...target('s-password'),
        credential: { secret: 'stored', scheme: 'password', username: 'svc' },
        routes,
      }),
    );
    policy.bundles.push(
      bundle({
        id: 'egress-schemes',
        grants: [...SCHEMES.map(({ id }) => id), 's-missing', 's-password'].map((id) => ({
          connection: id,
          actions: ['svc.call'],
          resources: ['svc:**'],
        })),
      }),
    );
    policy.scopes.channels.push({
      id: 'C90SCHEMES',
      name: 'egress-schemes',
      visibility: 'public',
      inherit: true,
      unattended: true,
      bundles: [{ bundle: 'egress-schemes' }],
    });
  });
  for (const { id, secret } of SCHEMES) await env.deputy.secrets.put('acme', id, secret);
  await env.deputy.secrets.put('acme', 's-password', `w${randomBytes(12).toString('base64url')}`);
  token = (await tokensWithScope(env, { channel: 'C90SCHEMES' }, 'mcp proxy')).access;
});

afterAll(async () => {
  await Promise.all([...upstreams.values()].map((upstream) => upstream.close()));
  await env?.close();
});

/** Route mode: the gateway token in Authorization, plus the caller's own headers. */
const route = (id: string, path: string, extra: Record<string, string | string[]> = {}) => ({
  target: `/proxy/${id}${path}`,
  headers: { authorization: `Bearer ${token}`, ...extra },
});
/** Forward-proxy mode: the gateway token in Proxy-Authorization, plus the caller's own headers. */
const forward = (id: string, path: string, extra: Record<string, string | string[]> = {}) => ({
  target: `${upstreams.get(id)!.origin}${path}`,
  headers: { 'proxy-authorization': `Bearer ${token}`, ...extra },
});

/** Counts the raw header lines named `name`, case-insensitively. */
function count(received: ReceivedRequest, name: string): number {
  return received.rawHeaders.filter(
    (entry, index) => index % 2 === 0 && entry.toLowerCase() === name,
  ).length;
}

async function one(id: string, raw: Parameters<typeof exchange>[1]) {
  const result = await exchange(env, raw, [upstreams.get(id)!]);
  expect(result.reached).toHaveLength(1);
  return { result, received: result.reached[0]! };
}

describe('credential schemes', () => {
  it.each(['route', 'forward'] as const)('bearer in %s mode', async (mode) => {
    const build = mode === 'route' ? route : forward;
    const { result, received } = await one(
      's-bearer',
      build(
        's-bearer',
        '/v1/a',
        mode === 'forward' ? { authorization: 'Bearer caller-chosen' } : {},
      ),
    );
    expect(result.response.status).toBe(200);
    expect(received.headers.authorization).toBe(`Bearer ${secretOf('s-bearer')}`);
    expect(count(received, 'authorization')).toBe(1);
    expect(received.headers['proxy-authorization']).toBeUndefined();
  });

  it.each(['route', 'forward'] as const)('basic in %s mode', async (mode) => {
    const build = mode === 'route' ? route : forward;
    const { received } = await one(
      's-basic',
      build('s-basic', '/v1/a', mode === 'forward' ? { authorization: 'Basic ZXZpbDpldmls' } : {}),
    );
    const expected = Buffer.from(`svc-user:${secretOf('s-basic')}`).toString('base64');
    expect(received.headers.authorization).toBe(`Basic ${expected}`);
    expect(count(received, 'authorization')).toBe(1);
  });

  it('basic without a username', async () => {
    const { received } = await one('s-basic-nouser', route('s-basic-nouser', '/v1/a'));
    const expected = Buffer.from(`:${secretOf('s-basic-nouser')}`).toString('base64');
    expect(received.headers.authorization).toBe(`Basic ${expected}`);
  });

  it.each(['route', 'forward'] as const)('named header in %s mode', async (mode) => {
    const build = mode === 'route' ? route : forward;
    const { result, received } = await one(
      's-header',
      build('s-header', '/v1/a', {
        'X-Service-Token': ['caller-one', 'caller-two'],
        'x-other': 'kept',
      }),
    );
    expect(result.response.status).toBe(200);
    expect(received.headers['x-service-token']).toBe(secretOf('s-header'));
    expect(count(received, 'x-service-token')).toBe(1);
    expect(received.headers['x-other']).toBe('kept');
    expect(received.headers.authorization).toBeUndefined();
  });

  it('header with the default name', async () => {
    const { received } = await one(
      's-header-default',
      route('s-header-default', '/v1/a', { 'x-api-key': 'caller' }),
    );
    expect(received.headers['x-api-key']).toBe(secretOf('s-header-default'));
    expect(count(received, 'x-api-key')).toBe(1);
    expect(received.headers.authorization).toBeUndefined();
  });

  it.each(['route', 'forward'] as const)('named query parameter in %s mode', async (mode) => {
    const build = mode === 'route' ? route : forward;
    const { result, received } = await one(
      's-query',
      build(
        's-query',
        '/v1/a?token=caller-one&keep=1&tok%65n=caller-two&token=caller-three&other=a%20b',
      ),
    );
    expect(result.response.status).toBe(200);
    const query = new URL(received.url, 'http://upstream.test').searchParams;
    expect([...query]).toEqual([
      ['keep', '1'],
      ['other', 'a b'],
      ['token', secretOf('s-query')],
    ]);
    expect(received.url.split('?')[0]).toBe('/v1/a');
    expect(received.headers.authorization).toBeUndefined();
    expect(result.http[0]!.detail).toMatchObject({ path: '/v1/a' });
  });

  it('query with the default name', async () => {
    const { received } = await one(
      's-query-default',
      route('s-query-default', '/v1/a?api_key=caller'),
    );
    const query = new URL(received.url, 'http://upstream.test').searchParams;
    expect([...query]).toEqual([['api_key', secretOf('s-query-default')]]);
  });

  it('body field in JSON', async () => {
    // Only the top-level field carries the credential, so a nested one is left alone.
    const sent = { client_secret: 'caller', amount: 12, nested: { client_secret: 'inner' } };
    const { result, received } = await one('s-body', {
      method: 'POST',
      ...route('s-body', '/v1/charge', { 'content-type': 'application/json' }),
      body: JSON.stringify(sent),
    });
    expect(result.response.status).toBe(200);
    expect(JSON.parse(received.body)).toEqual({ ...sent, client_secret: secretOf('s-body') });
    expect(received.headers['content-type']).toBe('application/json');
    expect(received.headers['content-length']).toBe(String(Buffer.byteLength(received.body)));
  });

  it('body field in a form', async () => {
    const { result, received } = await one('s-body', {
      method: 'POST',
      ...route('s-body', '/v1/charge', {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      }),
      body: 'client_secret=caller-one&amount=12&client%5Fsecret=caller-two&note=a+b',
    });
    expect(result.response.status).toBe(200);
    const form = new URLSearchParams(received.body);
    expect([...form]).toEqual([
      ['amount', '12'],
      ['note', 'a b'],
      ['client_secret', secretOf('s-body')],
    ]);
    expect(received.headers['content-length']).toBe(String(Buffer.byteLength(received.body)));
  });

  it('body with the default name', async () => {
    const { received } = await one('s-body-default', {
      method: 'PUT',
      ...forward('s-body-default', '/v1/a', { 'content-type': 'application/json' }),
      body: '{"api_key":"caller"}',
    });
    expect(JSON.parse(received.body)).toEqual({ api_key: secretOf('s-body-default') });
  });

  it('body created from nothing', async () => {
    // The proxy makes a JSON object for a request without a body, so it should label it JSON.
    const { received } = await one('s-body', { method: 'POST', ...route('s-body', '/v1/a') });
    expect(JSON.parse(received.body)).toEqual({ client_secret: secretOf('s-body') });
    expect(received.headers['content-type']).toBe('application/json');
  });

  it('body scheme on a GET', async () => {
    // The proxy reads no body on a GET, so the credential is not sent at all.
    const { result, received } = await one('s-body', route('s-body', '/v1/a'));
    expect(result.response.status).toBe(200);
    expect(received.body).toBe('');
    expect(JSON.stringify(received)).not.toContain(secretOf('s-body'));
  });

  it.each([
    [
      'text/plain',
      'client_secret=caller',
      'the body must be application/json or application/x-www-form-urlencoded',
    ],
    [
      'multipart/form-data; boundary=x',
      '--x--',
      'the body must be application/json or application/x-www-form-urlencoded',
    ],
    [
      'application/json',
      '["client_secret"]',
      'the JSON body must be an object to carry the credential',
    ],
    ['application/json', '"caller"', 'the JSON body must be an object to carry the credential'],
    ['application/json', 'null', 'the JSON body must be an object to carry the credential'],
  ])('rejects a %s body %s', async (type, body, description) => {
    const result = await exchange(
      env,
      { method: 'POST', ...route('s-body', '/v1/a', { 'content-type': type }), body },
      [upstreams.get('s-body')!],
    );
    expect(result.response.status).toBe(400);
    expect(result.body).toEqual({ error: 'invalid_request', error_description: description });
    expect(result.reached).toEqual([]);
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'invalid_request',
      connection: 's-body',
    });
  });

  it('rejects invalid JSON', async () => {
    const result = await exchange(
      env,
      {
        method: 'POST',
        ...route('s-body', '/v1/a', { 'content-type': 'application/json' }),
        body: '{"a":',
      },
      [upstreams.get('s-body')!],
    );
    expect(result.response.status).toBe(400);
    expect(result.body).toMatchObject({ error: 'invalid_request' });
    expect(result.reached).toEqual([]);
  });
});

describe('responses and failures', () => {
  it('filters upstream response headers', async () => {
    const { result } = await one('s-header', route('s-header', '/v1/a'));
    expect(result.response.headers['set-cookie']).toBeUndefined();
    expect(result.response.headers['proxy-authenticate']).toBeUndefined();
    expect(result.response.headers['www-authenticate']).toBe('Bearer realm="upstream"');
    expect(result.response.headers['x-upstream']).toBe('s-header');
    expect(result.body).toEqual({ ok: true, method: 'GET' });
  });

  it('returns 502 without a stored secret', async () => {
    const result = await exchange(env, route('s-missing', '/v1/a'), [upstreams.get('s-missing')!]);
    expect(result.response.status).toBe(502);
    expect(result.body).toEqual({
      error: 'credential_unavailable',
      error_description: 'the credential of connection s-missing is unavailable',
    });
    expect(result.reached).toEqual([]);
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'credential_unavailable',
      connection: 's-missing',
    });
  });

  it('rejects a scheme HTTP cannot carry', async () => {
    const result = await exchange(env, route('s-password', '/v1/a'), [
      upstreams.get('s-password')!,
    ]);
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual({
      error: 'credential_unavailable',
      error_description: 'the credential of connection s-password cannot be sent over HTTP',
    });
    expect(result.reached).toEqual([]);
  });
});

describe('secrets', () => {
  it('stay with their own upstream', async () => {
    // No secret reaches a caller, the audit log or another upstream, and no upstream gets the
    // gateway token.
    const secrets = SCHEMES.map((entry) => entry.secret);
    const forms = secrets.flatMap((secret) => [
      secret,
      encodeURIComponent(secret),
      new URLSearchParams({ s: secret }).toString().slice(2),
      Buffer.from(`svc-user:${secret}`).toString('base64'),
      Buffer.from(`:${secret}`).toString('base64'),
    ]);
    expect(responses.length).toBeGreaterThan(15);
    for (const response of responses) {
      const whole = JSON.stringify(response);
      for (const form of forms) expect(whole).not.toContain(form);
    }
    for (const event of await auditEventsAfter(env.deputy, 0)) {
      const whole = JSON.stringify(event);
      for (const form of forms) expect(whole).not.toContain(form);
    }
    for (const [id, upstream] of upstreams) {
      for (const received of upstream.received) {
        const whole = JSON.stringify(received);
        expect(whole).not.toContain(token);
        for (const other of SCHEMES.filter((entry) => entry.id !== id))
          expect(whole).not.toContain(other.secret);
      }
    }
  });

  it('never leave the machine', () => {
    expect(blocked).toEqual({ connections: [], lookups: [] });
  });
});
