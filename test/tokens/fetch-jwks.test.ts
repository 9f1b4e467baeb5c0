/**
 * Download of a JWK set from a configured URL, against a real HTTP server on 127.0.0.1: the
 * URL rules, the time and size limits, and validation of the body.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

import { exportJWK, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fetchJwks } from '../../src/tokens/fetch-jwks.js';
import { closeServer, expectRejected, listen } from './helpers.js';

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

let server: Server;
let base: string;
let jwks: JSONWebKeySet;
let privateJwk: unknown;
const hits = new Map<string, number>();

const json =
  (body: unknown): Handler =>
  (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };

const routes: Record<string, Handler> = {
  '/jwks': (request, response) => json(jwks)(request, response),
  '/missing': (_request, response) => response.writeHead(404).end(),
  '/redirect': (_request, response) =>
    response.writeHead(302, { location: `${base}/redirect-target` }).end(),
  '/redirect-target': (request, response) => json(jwks)(request, response),
  '/declared-large': (_request, response) => {
    response.writeHead(200, { 'content-length': String(2_000_000) });
    response.write('{"keys":[');
  },
  '/chunked-large': (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.write('{"keys":[');
    for (let i = 0; i < 200; i += 1) response.write(`${JSON.stringify(jwks.keys[0])},`);
    response.end(`${JSON.stringify(jwks.keys[0])}]}`);
  },
  '/silent': () => {},
  '/slow-body': (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.write('{"keys":');
  },
  '/not-json': (_request, response) => response.writeHead(200).end('<html></html>'),
  '/no-keys': json({ keys: 'none' }),
  '/secret-key': json({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }),
  '/private-key': (request, response) => json({ keys: [privateJwk] })(request, response),
};

beforeAll(async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'idp-1', use: 'sig' }] };
  privateJwk = await exportJWK(privateKey);

  server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    (routes[path] ?? routes['/missing']!)(request, response);
  });
  base = await listen(server);
});

afterAll(async () => {
  await closeServer(server);
});

describe('fetchJwks', () => {
  it('fetches a JWK set', async () => {
    await expect(fetchJwks(`${base}/jwks`)).resolves.toEqual(jwks);
  });

  it('rejects URLs other than https and loopback http', async () => {
    const urls = [
      'http://idp.example.test/jwks',
      'http://localhost:1/jwks',
      'http://[::1]:1/jwks',
      'file:///etc/passwd',
      'ftp://127.0.0.1/jwks',
      'not a url',
    ];
    for (const url of urls) {
      await expect(fetchJwks(url)).rejects.toThrow(TypeError);
    }
  });

  it('rejects invalid limits', async () => {
    await expect(fetchJwks(`${base}/jwks`, { timeoutMs: 0 })).rejects.toThrow(TypeError);
    await expect(fetchJwks(`${base}/jwks`, { maxBytes: -1 })).rejects.toThrow(TypeError);
  });

  it('rejects a status other than 200', async () => {
    const error = await expectRejected(
      () => fetchJwks(`${base}/missing?api_key=hunter2`),
      'ERR_JWKS_FETCH',
    );

    expect(error.message).toContain('HTTP status 404');
    expect(error.message).not.toContain('hunter2');
  });

  it('does not follow redirects', async () => {
    await expectRejected(() => fetchJwks(`${base}/redirect`), 'ERR_JWKS_FETCH');

    expect(hits.get('/redirect-target') ?? 0).toBe(0);
  });

  it('rejects a declared length above the limit', async () => {
    const error = await expectRejected(
      () => fetchJwks(`${base}/declared-large`, { maxBytes: 4096 }),
      'ERR_JWKS_FETCH',
    );

    expect(error.message).toContain('larger than 4096 bytes');
  });

  it('stops reading a chunked body above the limit', async () => {
    const error = await expectRejected(
      () => fetchJwks(`${base}/chunked-large`, { maxBytes: 4096 }),
      'ERR_JWKS_FETCH',
    );

    expect(error.message).toContain('larger than 4096 bytes');
  });

  it('times out when no response arrives', async () => {
    const started = Date.now();
    const error = await expectRejected(
      () => fetchJwks(`${base}/silent`, { timeoutMs: 200 }),
      'ERR_JWKS_FETCH',
    );

    expect(error.message).toContain('timed out after 200 ms');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('times out when the body stalls', async () => {
    const error = await expectRejected(
      () => fetchJwks(`${base}/slow-body`, { timeoutMs: 200 }),
      'ERR_JWKS_FETCH',
    );

    expect(error.message).toContain('timed out after 200 ms');
  });

  it.each(['/not-json', '/no-keys', '/secret-key', '/private-key'])(
    'rejects the invalid body at %s',
    async (path) => {
      await expectRejected(() => fetchJwks(`${base}${path}`), 'ERR_JWKS_INVALID');
    },
  );
});
