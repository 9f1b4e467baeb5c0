/**
 * Session quotas of the 2025-11-25 transport: a runtime client that opens more than its quota
 * closes its own least recently used session, never another client's.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { Server } from '@modelcontextprotocol/server';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { GatewayCaller } from '../../src/gateway/bearer.js';
import { McpTransport } from '../../src/gateway/mcp-transport.js';

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'test', version: '1.0.0' },
  },
};

function callerOf(clientId: string, thread: string): GatewayCaller {
  return {
    workspace: 'acme',
    agent: 'helper',
    channel: undefined,
    invoker: undefined,
    thread,
    identity: 'agent:helper',
    scope: 'workspace',
    scopes: new Set(['mcp']),
    clientId,
    jti: thread,
    expiresAt: Math.floor(Date.now() / 1000) + 300,
    isActive: () => true,
  };
}

let transport: McpTransport;
let http: HttpServer;
let url: string;

beforeAll(async () => {
  transport = new McpTransport({
    createServer: () => new Server({ name: 'test', version: '1.0.0' }, { capabilities: {} }),
    logger: pino({ level: 'silent' }),
    maxSessionsPerClient: 2,
  });
  // The test names the caller in headers; the gateway takes it from the access token.
  http = createServer((request, response) => {
    const caller = callerOf(
      String(request.headers['x-client']),
      String(request.headers['x-thread']),
    );
    void transport.handle(request, response, caller);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
});

afterAll(async () => {
  await transport?.close();
  await new Promise((resolve) => http?.close(resolve));
});

async function post(client: string, thread: string, body: unknown, session?: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'x-client': client,
      'x-thread': thread,
      ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' } : {}),
    },
    body: JSON.stringify(body),
  });
  await response.text();
  return { status: response.status, session: response.headers.get('mcp-session-id') };
}

const PING = { jsonrpc: '2.0', id: 2, method: 'ping' };

describe('session quota per client', () => {
  it('closes the client’s least recently used session', async () => {
    const other = await post('other', 't0', INITIALIZE);
    const first = await post('runtime', 't1', INITIALIZE);
    const second = await post('runtime', 't2', INITIALIZE);
    expect((await post('runtime', 't1', PING, first.session!)).status).toBe(200);

    // A third session closes t2, used least recently; t1 was just used.
    const third = await post('runtime', 't3', INITIALIZE);

    expect(third.status).toBe(200);
    expect((await post('runtime', 't2', PING, second.session!)).status).toBe(404);
    expect((await post('runtime', 't1', PING, first.session!)).status).toBe(200);
    expect((await post('runtime', 't3', PING, third.session!)).status).toBe(200);
    expect((await post('other', 't0', PING, other.session!)).status).toBe(200);
    expect(transport.sessions).toBe(3);
  });

  it('answers another identity’s session as unknown', async () => {
    const own = await post('runtime', 't4', INITIALIZE);

    expect((await post('runtime', 't5', PING, own.session!)).status).toBe(404);
    expect((await post('runtime', 't4', PING, own.session!)).status).toBe(200);
  });
});
