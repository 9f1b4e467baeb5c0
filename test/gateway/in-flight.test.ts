/**
 * The kill switch reaches calls already in flight: a slow tool call and a slow proxied
 * request both stop soon after the agent is disabled, and are recorded as stopped.
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

let env: EgressEnvironment;
let slow: Upstream;

beforeAll(async () => {
  env = await startEgressEnvironment();
  // Answers after 10 s, unless the request is stopped first.
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
        routes: [{ methods: ['GET'], path: '/**', action: 'slow.read', resource: 'slow:all' }],
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
        headers: { authorization: `Bearer ${env.acme.adminKey}`, 'content-type': 'application/json' },
        body: '{}',
      }).then(resolve, reject);
    }, milliseconds),
  );
}

describe('kill switch in flight', () => {
  it('stops a slow tool call and a slow proxied request', async () => {
    const token = await proxyToken(env, { channel: 'C01GENERAL', invoker: 'U02BOB' });
    const client = await connectGateway(env.acme.url, token);
    const before = await lastAuditSeq(env.deputy);
    const started = performance.now();

    const [call, proxied, disabled] = await Promise.all([
      client
        .callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 10, steps: 2 } })
        .then(
          () => null,
          (error: { code?: number; data?: unknown }) => error,
        ),
      send(env.port, { target: '/proxy/slow/x', headers: { authorization: `Bearer ${token}` } }),
      disableAfter(300),
    ]);
    const elapsed = performance.now() - started;
    await client.close().catch(() => undefined);

    expect(disabled.status).toBe(200);
    expect(call?.code).toBe(-32001);
    expect(call?.data).toMatchObject({ reason: 'token_revoked' });
    expect(proxied.status).toBe(403);
    expect(JSON.parse(proxied.text).error).toBe('token_revoked');
    expect(elapsed).toBeLessThan(5000);

    const events = (await auditEventsAfter(env.deputy, before)).filter(
      (event) => event.type === 'tool.call' || event.type === 'http.request',
    );
    expect(events.map((event) => [event.type, event.decision, event.reason]).sort()).toEqual([
      ['http.request', 'deny', 'token_revoked'],
      ['tool.call', 'deny', 'token_revoked'],
    ]);
  });
});
