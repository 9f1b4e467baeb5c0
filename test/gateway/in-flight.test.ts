/**
 * The kill switch reaches calls already in flight: a slow tool call and a slow proxied
 * request both stop soon after the agent is disabled, and are recorded with token_revoked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  bundle,
  changePolicy,
  connection,
  type EgressEnvironment,
  lastAuditSeq,
  auditEventsAfter,
  proxyToken,
  send,
  startEgressEnvironment,
  startUpstream,
  type Upstream,
} from './egress-support.js';
import { connectGateway } from '../../examples/acme/runtime.js';
import { connect as connectSocket } from 'node:net';

let env: EgressEnvironment;
let slow: Upstream;

beforeAll(async () => {
  env = await startEgressEnvironment();
  // Responds after 10 s, unless the request is stopped first.
  slow = await startUpstream((_request, response) => {
    const timer = setTimeout(() => response.end('late'), 10_000);
    response.on('close', () => clearTimeout(timer));
  });
  await changePolicy(env.deputy, (policy) => {
    policy.connections.push(
      connection({
        id: 'slow',
        kind: 'http',
        url: slow.origin,
        hosts: [`127.0.0.1:${slow.port}`],
        allow_addresses: ['loopback'],
        routes: [
          { methods: ['GET', 'PUT'], path: '/**', action: 'slow.read', resource: 'slow:all' },
        ],
      }),
      connection({
        id: 'everything',
        kind: 'mcp',
        command: ['node', 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'],
      }),
    );
    policy.bundles.push(
      bundle({
        id: 'slow',
        grants: [{ connection: 'slow', actions: ['slow.read'], resources: ['slow:all'] }],
        tools: ['everything/**'],
      }),
    );
    policy.scopes.workspace.bundles.push({ bundle: 'slow' });
  });
});

afterAll(async () => {
  await env?.close();
  await slow?.close();
});

function disableAfter(milliseconds: number): Promise<Response> {
  return new Promise((resolve, reject) =>
    setTimeout(() => {
      fetch(`${env.acme.url}/admin/v1/workspaces/acme/agents/helper/disable`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${env.acme.adminKey}`,
          'content-type': 'application/json',
        },
        body: '{}',
      }).then(resolve, reject);
    }, milliseconds),
  );
}

/** Sends a PUT's head now and its body when `release` resolves; returns the raw reply. */
function putWithHeldBody(token: string, release: Promise<unknown>): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectSocket(env.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const body = '{"amount":1000000}';
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.write(
      `PUT /proxy/slow/transfer HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    void release.then(() => socket.write(body));
  });
}

describe('kill switch before sending', () => {
  it('stops a request whose body arrives after the disable', async () => {
    const token = await proxyToken(env, { channel: 'C01GENERAL', invoker: 'U02BOB' });
    const before = slow.received.length;
    const seq = await lastAuditSeq(env.deputy);

    const disabled = disableAfter(200);
    const reply = await putWithHeldBody(
      token,
      disabled.then(() => new Promise((r) => setTimeout(r, 100))),
    );

    expect((await disabled).status).toBe(200);
    expect(reply).toMatch(/^HTTP\/1\.1 403 /);
    expect(reply).toContain('"error":"token_revoked"');
    expect(slow.received.length).toBe(before);
    const events = (await auditEventsAfter(env.deputy, seq)).filter(
      (event) => event.type === 'http.request',
    );
    expect(events.map((event) => [event.decision, event.reason])).toEqual([
      ['deny', 'token_revoked'],
    ]);
    expect((await enable()).status).toBe(200);
    // Tokens issued in the second of a disable stay inactive after enable.
    await new Promise((resolve) => setTimeout(resolve, 1100));
  });
});

function enable(): Promise<Response> {
  return fetch(`${env.acme.url}/admin/v1/workspaces/acme/agents/helper/enable`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.acme.adminKey}`, 'content-type': 'application/json' },
    body: '{}',
  });
}

describe('kill switch in flight', () => {
  it('stops a slow tool call and a slow proxied request', async () => {
    const token = await proxyToken(env, { channel: 'C01GENERAL', invoker: 'U02BOB' });
    const client = await connectGateway(env.acme.url, token);
    // The upstream process starts on the first call, so both calls are surely sent by the time
    // of the disable.
    await client.callTool({ name: 'everything__echo', arguments: { message: 'warm' } });
    const before = await lastAuditSeq(env.deputy);
    const started = performance.now();

    const [call, proxied, disabled] = await Promise.all([
      client
        .callTool({
          name: 'everything__trigger-long-running-operation',
          arguments: { duration: 10, steps: 2 },
        })
        .then(
          () => null,
          (error: { code?: number; data?: unknown }) => error,
        ),
      send(env.port, { target: '/proxy/slow/x', headers: { authorization: `Bearer ${token}` } }),
      disableAfter(500),
    ]);
    const elapsed = performance.now() - started;
    await client.close().catch(() => undefined);

    expect(disabled.status).toBe(200);
    expect(call?.code).toBe(-32001);
    expect(call?.data).toMatchObject({ reason: 'token_revoked' });
    expect(proxied.status).toBe(403);
    expect(JSON.parse(proxied.text).error).toBe('token_revoked');
    expect(elapsed).toBeLessThan(5000);

    // Both events are written after their call ended, so they may land just after it.
    let events = await auditEventsAfter(env.deputy, before);
    for (let tries = 0; tries < 50; tries++) {
      events = (await auditEventsAfter(env.deputy, before)).filter(
        (event) =>
          event.type === 'http.request' ||
          (event.type === 'tool.call' &&
            event.detail?.tool === 'everything__trigger-long-running-operation'),
      );
      if (events.length >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    // Both had been sent, so they are recorded as allowed calls that the kill switch stopped.
    expect(events.map((event) => [event.type, event.decision, event.reason]).sort()).toEqual([
      ['http.request', 'allow', 'granted'],
      ['tool.call', 'allow', 'token_revoked'],
    ]);
    const proxiedEvent = events.find((event) => event.type === 'http.request')!;
    expect(proxiedEvent.detail).toMatchObject({ response_error: 'token_revoked' });
  });
});
