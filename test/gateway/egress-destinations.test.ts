/**
 * Tests of where the egress proxy may send a request: address ranges, IPv4 written as a number
 * or inside IPv6, the metadata address, host names, redirects, read-only connections, time
 * limits and upstream failures.
 *
 * Addresses outside loopback are named here but never connected to. The proxy must reject them
 * at its address check, and the network guard of egress-support.ts would make any attempt to
 * connect elsewhere fail in this process and record it in `blocked`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { classifyAddress } from '../../src/gateway/egress/destination.js';
import {
  blocked,
  bundle,
  changePolicy,
  closedPort,
  connection,
  type EgressEnvironment,
  exchange,
  httpRecord,
  lookedUp,
  type RecordCaller,
  startEgressEnvironment,
  startUpstream,
  tokensWithScope,
  type Upstream,
} from './egress-support.js';

let env: EgressEnvironment;
let token: string;
/** Upstream named by connections without allow_addresses, so it must receive nothing. */
let guarded: Upstream;
/** Upstream reached by name through a connection that allows loopback. */
let named: Upstream;
/** Upstream that redirects every request to `elsewhere`. */
let redirecting: Upstream;
/** Redirect target, which must receive nothing. */
let elsewhere: Upstream;
let readOnly: Upstream;
/** Upstream that never responds. */
let silent: Upstream;
/** Upstream that no connection names, reachable only through a bundle's domains. */
let unnamed: Upstream;
let closed: number;

const CALLER: RecordCaller = { identity: 'agent:helper', invoker: null, scope: 'channel:C91DEST' };
const ROUTES = [{ methods: ['*'], path: '/**', action: 'svc.call', resource: 'svc:destination' }];

beforeAll(async () => {
  env = await startEgressEnvironment();
  guarded = await startUpstream();
  named = await startUpstream();
  elsewhere = await startUpstream();
  redirecting = await startUpstream((request, response) => {
    const status = request.url.startsWith('/temporary') ? 307 : 302;
    response.writeHead(status, {
      location: `${elsewhere.origin}/stolen`,
      'content-type': 'text/plain',
    });
    response.end('moved');
  });
  readOnly = await startUpstream();
  silent = await startUpstream(() => {
    // The request stays open until the server closes.
  });
  unnamed = await startUpstream();
  closed = await closedPort();

  const loopback = (id: string, url: string, host: string, extra: Record<string, unknown> = {}) =>
    connection({
      id,
      kind: 'http',
      url,
      hosts: [host],
      allow_addresses: ['loopback'],
      routes: ROUTES,
      ...extra,
    });
  const without = (id: string, url: string, host: string, extra: Record<string, unknown> = {}) =>
    connection({ id, kind: 'http', url, hosts: [host], routes: ROUTES, ...extra });

  const connections = [
    without('d-noaddr', guarded.origin, `127.0.0.1:${guarded.port}`),
    without('d-noaddr-name', `http://localhost:${guarded.port}`, `localhost:${guarded.port}`),
    without(
      'd-mapped',
      `http://[::ffff:7f00:1]:${guarded.port}`,
      `[::ffff:7f00:1]:${guarded.port}`,
    ),
    without('d-v6-loopback', `http://[::1]:${guarded.port}`, `[::1]:${guarded.port}`),
    without('d-metadata', 'http://169.254.169.254', '169.254.169.254'),
    without('d-private', 'http://10.0.0.1', '10.0.0.1'),
    without('d-cgnat', 'http://100.100.100.200', '100.100.100.200'),
    connection({
      id: 'd-metadata-lenient',
      kind: 'http',
      url: 'http://169.254.169.254:8080',
      hosts: ['169.254.169.254:8080'],
      allow_addresses: ['loopback', 'private'],
      routes: ROUTES,
    }),
    connection({
      id: 'd-zero',
      kind: 'http',
      url: `http://0.0.0.0:${guarded.port}`,
      hosts: [`0.0.0.0:${guarded.port}`],
      allow_addresses: ['loopback', 'private'],
      routes: ROUTES,
    }),
    loopback('d-named', `http://localhost:${named.port}`, `localhost:${named.port}`),
    loopback('d-wrong-host', named.origin, `localhost:${named.port}`),
    loopback('d-redirect', redirecting.origin, `127.0.0.1:${redirecting.port}`),
    loopback('d-read-only', readOnly.origin, `127.0.0.1:${readOnly.port}`, { read_only: true }),
    loopback('d-slow', silent.origin, `127.0.0.1:${silent.port}`, { timeout_ms: 200 }),
    loopback('d-closed', `http://127.0.0.1:${closed}`, `127.0.0.1:${closed}`),
  ];
  await changePolicy(env.deputy, (policy) => {
    policy.connections.push(...connections);
    policy.bundles.push(
      bundle({
        id: 'egress-destinations',
        grants: connections.map(({ id }) => ({
          connection: id,
          actions: ['svc.call'],
          resources: ['svc:**'],
        })),
        domains: ['localhost', '169.254.169.254', '127.0.0.1'],
      }),
    );
    policy.scopes.channels.push({
      id: 'C91DEST',
      name: 'egress-destinations',
      visibility: 'public',
      inherit: true,
      unattended: true,
      bundles: [{ bundle: 'egress-destinations' }],
    });
  });
  token = (await tokensWithScope(env, { channel: 'C91DEST' }, 'mcp proxy')).access;
});

afterAll(async () => {
  for (const upstream of [guarded, named, redirecting, elsewhere, readOnly, silent, unnamed])
    await upstream?.close();
  await env?.close();
});

const route = (target: string, method = 'GET') => ({
  method,
  target,
  headers: { authorization: `Bearer ${token}` },
});
const forward = (target: string, method = 'GET') => ({
  method,
  target,
  headers: { 'proxy-authorization': `Bearer ${token}` },
});
const all = () => [guarded, named, redirecting, elsewhere, readOnly, silent, unnamed];

/** Builds the error body of a request rejected at the address check. */
function addressRejection(host: string, range: string, id: string) {
  const fix =
    range === 'reserved'
      ? 'reserved addresses are never reachable'
      : 'list the range under allow_addresses to allow it';
  return {
    error: 'address_not_allowed',
    error_description: `host ${host} resolves to a ${range} address, which connection ${id} may not reach; ${fix}`,
  };
}

describe('a connection without allow_addresses', () => {
  it('rejects 127.0.0.1 after deciding', async () => {
    const result = await exchange(env, route('/proxy/d-noaddr/status'), all());
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual(addressRejection('127.0.0.1', 'loopback', 'd-noaddr'));
    expect(result.reached).toEqual([]);
    const decided = result.events.find((event) => event.type === 'decision');
    expect(decided).toMatchObject({ decision: 'allow' });
    expect(result.http).toEqual([
      httpRecord(CALLER, {
        decision: 'deny',
        reason: 'address_not_allowed',
        connection: 'd-noaddr',
        action: 'svc.call',
        resource: 'svc:destination',
        decisionId: decided!.decision_id,
        requestId: result.response.headers['x-request-id'],
        detail: { method: 'GET', host: `127.0.0.1:${guarded.port}`, path: '/status', status: null },
      }),
    ]);
  });

  it('rejects localhost by its address', async () => {
    const result = await exchange(env, route('/proxy/d-noaddr-name/status'), all());
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual(addressRejection('localhost', 'loopback', 'd-noaddr-name'));
    expect(result.reached).toEqual([]);
    expect(lookedUp).toContain('localhost');
  });

  it.each([
    ['d-mapped', '/proxy/d-mapped/status', '::ffff:7f00:1', 'loopback'],
    ['d-v6-loopback', '/proxy/d-v6-loopback/status', '::1', 'loopback'],
    ['d-metadata', '/proxy/d-metadata/latest/meta-data/iam', '169.254.169.254', 'link-local'],
    ['d-private', '/proxy/d-private/admin', '10.0.0.1', 'private'],
    ['d-cgnat', '/proxy/d-cgnat/latest/meta-data', '100.100.100.200', 'private'],
  ])('rejects %s in route mode', async (id, target, host, range) => {
    const result = await exchange(env, route(target), all());
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual(addressRejection(host, range, id));
    expect(result.reached).toEqual([]);
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'address_not_allowed',
      connection: id,
    });
  });

  it.each([
    [
      'decimal',
      (port: number) => `http://2130706433:${port}/status`,
      'd-noaddr',
      '127.0.0.1',
      'loopback',
    ],
    [
      'hexadecimal',
      (port: number) => `http://0x7f.0.0.1:${port}/status`,
      'd-noaddr',
      '127.0.0.1',
      'loopback',
    ],
    [
      'octal',
      (port: number) => `http://0177.0.0.1:${port}/status`,
      'd-noaddr',
      '127.0.0.1',
      'loopback',
    ],
    ['short', (port: number) => `http://127.1:${port}/status`, 'd-noaddr', '127.0.0.1', 'loopback'],
    [
      'one hexadecimal number',
      (port: number) => `http://0x7f000001:${port}/status`,
      'd-noaddr',
      '127.0.0.1',
      'loopback',
    ],
    [
      'IPv4-mapped IPv6',
      (port: number) => `http://[::ffff:127.0.0.1]:${port}/status`,
      'd-mapped',
      '::ffff:7f00:1',
      'loopback',
    ],
    [
      'IPv6 loopback',
      (port: number) => `http://[::1]:${port}/status`,
      'd-v6-loopback',
      '::1',
      'loopback',
    ],
    [
      'the metadata address',
      () => 'http://169.254.169.254/latest/meta-data/',
      'd-metadata',
      '169.254.169.254',
      'link-local',
    ],
    [
      'the metadata address in decimal',
      () => 'http://2852039166/latest/meta-data/',
      'd-metadata',
      '169.254.169.254',
      'link-local',
    ],
    [
      'the metadata address in hexadecimal',
      () => 'http://0xa9fea9fe/latest/meta-data/',
      'd-metadata',
      '169.254.169.254',
      'link-local',
    ],
    [
      'the metadata address in octal',
      () => 'http://0251.0376.0251.0376/latest/',
      'd-metadata',
      '169.254.169.254',
      'link-local',
    ],
    [
      'the metadata address, short form',
      () => 'http://169.254.43518/latest/',
      'd-metadata',
      '169.254.169.254',
      'link-local',
    ],
  ])('rejects the %s form', async (_, target, id, host, range) => {
    const result = await exchange(env, forward(target(guarded.port)), all());
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual(addressRejection(host, range, id));
    expect(result.reached).toEqual([]);
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'address_not_allowed',
      connection: id,
    });
  });
});

describe('allow_addresses', () => {
  it('keeps link-local apart', async () => {
    // Allowing loopback and private does not allow the metadata address.
    const result = await exchange(
      env,
      forward('http://169.254.169.254:8080/latest/meta-data/'),
      all(),
    );
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual(
      addressRejection('169.254.169.254', 'link-local', 'd-metadata-lenient'),
    );
  });

  it.each([`http://0.0.0.0:PORT/status`, `http://0:PORT/status`, `http://0x0:PORT/status`])(
    'never covers 0.0.0.0 (%s)',
    async (target) => {
      const result = await exchange(
        env,
        forward(target.replace('PORT', String(guarded.port))),
        all(),
      );
      expect(result.response.status).toBe(403);
      expect(result.body).toEqual(addressRejection('0.0.0.0', 'reserved', 'd-zero'));
      expect(result.reached).toEqual([]);
    },
  );

  it('reaches localhost when allowed', async () => {
    const result = await exchange(env, route('/proxy/d-named/status'), all());
    expect(result.response.status).toBe(200);
    expect(result.reached.map((entry) => [entry.url, entry.headers.host])).toEqual([
      ['/status', `localhost:${named.port}`],
    ]);
  });

  it('still requires a listed host', async () => {
    const result = await exchange(env, route('/proxy/d-wrong-host/status'), all());
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual({
      error: 'host_not_allowed',
      error_description: `127.0.0.1:${named.port} is not a host of connection d-wrong-host`,
    });
    expect(result.reached).toEqual([]);
  });
});

describe('hosts allowed by domains', () => {
  it.each([
    [
      'localhost',
      () => `http://localhost:${unnamed.port}/status`,
      'host:localhost',
      'localhost',
      'loopback',
    ],
    [
      '127.0.0.1',
      () => `http://127.0.0.1:${unnamed.port}/status`,
      'host:127.0.0.1',
      '127.0.0.1',
      'loopback',
    ],
    [
      'the metadata address',
      () => 'http://169.254.169.254:81/latest/',
      'host:169.254.169.254',
      '169.254.169.254',
      'link-local',
    ],
  ])('rejects %s by address', async (_, target, resource, host, range) => {
    const result = await exchange(env, forward(target()), all());
    expect(result.response.status).toBe(403);
    expect(result.body).toEqual(addressRejection(host, range, '$domains'));
    expect(result.reached).toEqual([]);
    expect(result.events.find((event) => event.type === 'decision')).toMatchObject({
      decision: 'allow',
      action: 'web.fetch',
      resource,
    });
    expect(result.http[0]).toMatchObject({
      decision: 'deny',
      reason: 'address_not_allowed',
      connection: null,
      action: 'web.fetch',
      resource,
    });
  });
});

describe('redirects', () => {
  it.each([
    ['302', '/moved', 302],
    ['307', '/temporary', 307],
  ])('returns %s unfollowed', async (_, path, status) => {
    for (const raw of [
      route(`/proxy/d-redirect${path}`),
      forward(`${redirecting.origin}${path}`),
    ]) {
      const result = await exchange(env, raw, [redirecting, elsewhere]);
      expect(result.response.status).toBe(status);
      expect(result.response.headers.location).toBe(`${elsewhere.origin}/stolen`);
      expect(result.response.text).toBe('moved');
      expect(result.reached.map((entry) => entry.url)).toEqual([path]);
      expect(result.http[0]).toMatchObject({
        decision: 'allow',
        connection: 'd-redirect',
        detail: expect.objectContaining({ status }),
      });
    }
    expect(elsewhere.received).toEqual([]);
  });
});

describe('a read-only connection', () => {
  it.each(['GET', 'HEAD', 'OPTIONS'])('forwards %s', async (method) => {
    const result = await exchange(env, route('/proxy/d-read-only/items', method), [readOnly]);
    expect(result.response.status).toBe(200);
    expect(result.reached.map((entry) => entry.method)).toEqual([method]);
  });

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])('rejects %s with 405', async (method) => {
    for (const raw of [
      route('/proxy/d-read-only/items', method),
      forward(`${readOnly.origin}/items`, method),
    ]) {
      const result = await exchange(env, { ...raw, body: '{}' }, [readOnly]);
      expect(result.response.status).toBe(405);
      expect(result.body).toEqual({
        error: 'method_not_allowed',
        error_description: `connection d-read-only is read-only; ${method} is not allowed`,
      });
      expect(result.reached).toEqual([]);
      expect(result.http[0]).toMatchObject({
        decision: 'deny',
        reason: 'method_not_allowed',
        action: null,
      });
    }
  });
});

describe('upstream failures', () => {
  it('times out after timeout_ms', async () => {
    const started = Date.now();
    const result = await exchange(env, route('/proxy/d-slow/wait'), [silent]);
    expect(result.response.status).toBe(504);
    expect(result.body).toEqual({
      error: 'upstream_timeout',
      error_description: 'connection d-slow timed out',
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    // The request was sent, so it may have taken effect: allowed, with what went wrong.
    expect(result.http[0]).toMatchObject({
      decision: 'allow',
      reason: 'granted',
      connection: 'd-slow',
      detail: { status: null, response_error: 'upstream_timeout' },
    });
  });

  it('returns 502 when nothing listens', async () => {
    const result = await exchange(env, route('/proxy/d-closed/x'), []);
    expect(result.response.status).toBe(502);
    expect(result.body).toEqual({
      error: 'upstream_error',
      error_description: 'connection d-closed failed (ECONNREFUSED)',
    });
  });

  it('rejects an oversized body', async () => {
    const result = await exchange(
      env,
      { ...route('/proxy/d-named/upload', 'POST'), body: Buffer.alloc(1_048_577, 0x61) },
      [named],
    );
    expect(result.response.status).toBe(413);
    expect(result.body).toEqual({
      error: 'invalid_request',
      error_description: 'the request body exceeds 1048576 bytes',
    });
    expect(result.reached).toEqual([]);
  });
});

describe('address classes', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['169.254.169.254', 'link_local'],
    ['::ffff:a9fe:a9fe', 'link_local'],
    ['fe80::1', 'link_local'],
    ['10.1.2.3', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.100.100.200', 'private'],
    ['fd00::1', 'private'],
    ['0.0.0.0', 'reserved'],
    ['::', 'reserved'],
    ['::ffff:0.0.0.0', 'reserved'],
    ['224.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['64:ff9b::7f00:1', 'reserved'],
    ['2002:7f00:1::', 'reserved'],
    ['172.32.0.1', 'public'],
    ['2606:4700::1111', 'public'],
  ])('%s is %s', (address, range) => {
    expect(classifyAddress(address)).toBe(range);
  });

  it('covers local-use NAT64 (RFC 8215)', () => {
    // Like 64:ff9b::/96, the prefix 64:ff9b:1::/48 embeds an IPv4 address (here 127.0.0.1) that
    // a NAT64 gateway would connect to for the proxy.
    expect(classifyAddress('64:ff9b:1::7f00:1')).not.toBe('public');
  });
});

describe('the network guard', () => {
  it('blocked nothing', () => {
    expect(blocked).toEqual({ connections: [], lookups: [] });
  });
});
