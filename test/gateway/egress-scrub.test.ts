/**
 * An upstream that echoes the request back: the credential Deputy injected must not reach the
 * agent in the response headers or body, even split across chunks, and a compressed response
 * that cannot be checked is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  bundle,
  changePolicy,
  connection,
  type EgressEnvironment,
  proxyToken,
  send,
  startEgressEnvironment,
  startUpstream,
  type Upstream,
} from './egress-support.js';

const SECRET = 'echo-secret-7c1d9e4b';

let env: EgressEnvironment;
let echo: Upstream;
let token: string;

beforeAll(async () => {
  env = await startEgressEnvironment();
  echo = await startUpstream((request, response) => {
    if (request.url === '/gzip') {
      response.writeHead(200, { 'content-encoding': 'gzip' });
      response.end(Buffer.from([0x1f, 0x8b]));
      return;
    }
    if (request.url === '/basic') {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end(`authorization=${request.headers.authorization}`);
      return;
    }
    const key = String(request.headers['x-api-key']);
    response.writeHead(200, { 'content-type': 'text/plain', 'x-echo': key });
    // The key is written in two chunks, split in its middle.
    response.write(`key=${key.slice(0, 7)}`);
    setTimeout(() => response.end(`${key.slice(7)};end`), 20);
  });
  await env.deputy.secrets.put('acme', 'echo', SECRET);
  await env.deputy.secrets.put('acme', 'echo-basic', SECRET);
  await changePolicy(env.deputy, (policy) => {
    policy.connections.push(
      connection({
        id: 'echo',
        kind: 'http',
        url: echo.origin,
        hosts: [`127.0.0.1:${echo.port}`],
        allow_addresses: ['loopback'],
        credential: { secret: 'stored', scheme: 'header', name: 'X-Api-Key' },
        routes: [{ methods: ['GET'], path: '/**', action: 'echo.read', resource: 'echo:all' }],
      }),
      connection({
        id: 'echo-basic',
        kind: 'http',
        url: echo.origin,
        hosts: [`127.0.0.1:${echo.port}`],
        allow_addresses: ['loopback'],
        credential: { secret: 'stored', scheme: 'basic', username: 'deputy' },
        routes: [{ methods: ['GET'], path: '/**', action: 'echo.read', resource: 'echo:all' }],
      }),
    );
    policy.bundles.push(
      bundle({
        id: 'echo',
        grants: [
          { connection: 'echo', actions: ['echo.read'], resources: ['echo:all'] },
          { connection: 'echo-basic', actions: ['echo.read'], resources: ['echo:all'] },
        ],
      }),
    );
    policy.scopes.workspace.bundles.push({ bundle: 'echo' });
  });
  token = await proxyToken(env, { channel: 'C01GENERAL' });
});

afterAll(async () => {
  await env?.close();
  await echo?.close();
});

describe('proxied responses', () => {
  it('scrub the injected credential', async () => {
    const response = await send(env.port, {
      target: '/proxy/echo/echo',
      headers: { authorization: `Bearer ${token}` },
    });

    expect(echo.received.at(-1)!.headers['x-api-key']).toBe(SECRET);
    expect(response.status).toBe(200);
    expect(response.text).toBe('key=[REDACTED];end');
    expect(response.headers['x-echo']).toBe('[REDACTED]');
  });

  it('scrub a basic credential in its base64 form', async () => {
    const response = await send(env.port, {
      target: '/proxy/echo-basic/basic',
      headers: { authorization: `Bearer ${token}` },
    });
    const encoded = Buffer.from(`deputy:${SECRET}`).toString('base64');

    expect(echo.received.at(-1)!.headers.authorization).toBe(`Basic ${encoded}`);
    expect(response.text).toBe('authorization=Basic [REDACTED]');
  });

  it('refuse a compressed response', async () => {
    const response = await send(env.port, {
      target: '/proxy/echo/gzip',
      headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip' },
    });

    expect(echo.received.at(-1)!.headers['accept-encoding']).toBe('identity');
    expect(response.status).toBe(502);
    expect(JSON.parse(response.text).error).toBe('upstream_error');
  });
});
