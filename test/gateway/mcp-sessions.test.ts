/**
 * Session quotas of the 2025-11-25 transport: an owner over its quota closes its own least
 * recently used session, and a runtime client over its quota is refused, never closing
 * sessions of others.
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
    maxSessionsPerOwner: 2,
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

describe('session quotas', () => {
  it('closes the owner’s own least recently used session', async () => {
    const first = await post('runtime', 't1', INITIALIZE);
    const second = await post('runtime', 't1', INITIALIZE);
    expect((await post('runtime', 't1', PING, first.session!)).status).toBe(200);

    // A third session of the same owner closes its second, used least recently.
    const third = await post('runtime', 't1', INITIALIZE);

    expect(third.status).toBe(200);
    expect((await post('runtime', 't1', PING, second.session!)).status).toBe(404);
    expect((await post('runtime', 't1', PING, first.session!)).status).toBe(200);
    expect((await post('runtime', 't1', PING, third.session!)).status).toBe(200);
  });

  it('refuses a client over its quota without closing others', async () => {
    const other = await post('other', 't0', INITIALIZE);
    const owners = ['t2', 't3', 't4'];
    const opened = [];
    for (const thread of owners) opened.push(await post('busy', thread, INITIALIZE));

    expect(opened.map((reply) => reply.status)).toEqual([200, 200, 503]);
    expect((await post('other', 't0', PING, other.session!)).status).toBe(200);
    expect((await post('busy', 't2', PING, opened[0]!.session!)).status).toBe(200);
  });

  it('answers another identity’s session as unknown', async () => {
    const own = await post('solo', 't5', INITIALIZE);

    expect((await post('solo', 't6', PING, own.session!)).status).toBe(404);
    expect((await post('solo', 't5', PING, own.session!)).status).toBe(200);
  });
});
