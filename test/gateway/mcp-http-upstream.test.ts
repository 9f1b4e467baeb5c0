/**
 * A Streamable HTTP upstream MCP server on loopback, built with the MCP SDK, that records the
 * headers of every request. The gateway must send the connection's credential and never the
 * caller's token, on both the SDK path (initialize, tools/list) and direct forwarding
 * (tools/call).
 */
import { createServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { connectionSchema } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';
import {
  connect,
  type GatewayTestEnvironment,
  startGatewayEnvironment,
  textOf,
} from './support.js';

const SECRET = 'tickets-secret-5be0a7d2';

let environment: GatewayTestEnvironment;
let upstream: HttpServer;
const received: Array<{ method: string | undefined; headers: IncomingHttpHeaders }> = [];

beforeAll(async () => {
  const handler = toNodeHandler(
    createMcpHandler(() => {
      const server = new McpServer({ name: 'tickets', version: '1.0.0' });
      server.registerTool(
        'open_ticket',
        { description: 'Opens a ticket.', inputSchema: { title: z.string() } },
        async ({ title }) => ({ content: [{ type: 'text', text: `opened: ${title}` }] }),
      );
      return server;
    }),
  );
  upstream = createServer((request, response) => {
    received.push({ method: request.method, headers: request.headers });
    void handler(request, response);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as AddressInfo).port;

  environment = await startGatewayEnvironment();
  const { deputy } = environment.acme;
  await deputy.secrets.put('acme', 'tickets', SECRET);
  const current = (await deputy.revisions.current('acme'))!;
  const policy = structuredClone(current.policy);
  policy.connections.push(
    connectionSchema.parse({
      id: 'tickets',
      kind: 'mcp',
      url: `http://127.0.0.1:${port}/mcp`,
      hosts: [`127.0.0.1:${port}`],
      allow_addresses: ['loopback'],
      credential: { secret: 'stored', scheme: 'bearer' },
    }),
  );
  policy.bundles.find((bundle) => bundle.id === 'baseline')!.tools.push('tickets/**');
  const parsed = parsePolicy(policy);
  if (!parsed.ok) throw new Error(parsed.issues.map((issue) => issue.message).join('; '));
  const call = { actor: { type: 'cli' as const, id: 'test' }, requestId: null };
  await deputy.apply(parsed.policy, current.revision, 'test', call);
});

afterAll(async () => {
  await environment?.close();
  await new Promise((resolve) => upstream?.close(resolve));
});

describe('HTTP upstream credentials', () => {
  it('injects the credential, never the caller token', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });

    const { tools } = await client.listTools();
    const result = await client.callTool({
      name: 'tickets__open_ticket',
      arguments: { title: 'VPN down' },
    });

    expect(tools.map((tool) => tool.name)).toContain('tickets__open_ticket');
    expect(textOf(result)).toBe('opened: VPN down');
    expect(received.length).toBeGreaterThanOrEqual(3);
    for (const request of received) {
      expect(request.headers.authorization).toBe(`Bearer ${SECRET}`);
      // No Deputy token of any kind: every JWT starts with the encoding of {"
      expect(JSON.stringify(request.headers)).not.toMatch(/eyJ[\w-]+\.eyJ/);
    }
    expect(received.map((request) => request.method)).toContain('POST');
  });
});
