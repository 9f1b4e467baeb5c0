/**
 * A small CRM API on loopback, standing in for a hosted CRM. It checks the integration user's
 * API key in `X-Api-Key`, like the real service would, and records what it received so tests
 * can see exactly what the egress proxy sent.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface CrmService {
  readonly url: string;
  readonly port: number;
  /** Requests received, oldest first. */
  readonly received: ReceivedRequest[];
  close(): Promise<void>;
}

const ACCOUNTS: Record<string, unknown> = {
  globex: { id: 'globex', name: 'Globex Corporation', owner: 'U04DAVE', arr: 120000 },
  initech: { id: 'initech', name: 'Initech', owner: 'U04DAVE', arr: 45000 },
};

/** Starts the CRM on 127.0.0.1:`port` (0 picks a free port), accepting only `apiKey`. */
export async function startCrm(apiKey: string, port = 0): Promise<CrmService> {
  const received: ReceivedRequest[] = [];
  const opportunities = new Map<string, unknown>([
    ['globex-renewal', { id: 'globex-renewal', account: 'globex', stage: 'proposal' }],
  ]);

  const server: Server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    received.push({
      method: request.method ?? '',
      url: request.url ?? '',
      headers: request.headers,
      body,
    });

    const send = (status: number, value: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(value));
    };
    if (request.headers['x-api-key'] !== apiKey) return send(401, { error: 'invalid API key' });

    const path = (request.url ?? '').split('?', 1)[0]!;
    const account = /^\/api\/accounts\/([^/]+)$/.exec(path)?.[1];
    if (account !== undefined && request.method === 'GET') {
      return ACCOUNTS[account]
        ? send(200, ACCOUNTS[account])
        : send(404, { error: 'no such account' });
    }
    const opportunity = /^\/api\/opportunities\/([^/]+)$/.exec(path)?.[1];
    if (opportunity !== undefined && request.method === 'GET') {
      const found = opportunities.get(opportunity);
      return found ? send(200, found) : send(404, { error: 'no such opportunity' });
    }
    if (opportunity !== undefined && request.method === 'PUT') {
      const update = JSON.parse(body || '{}') as Record<string, unknown>;
      const next = { ...(opportunities.get(opportunity) as object), ...update, id: opportunity };
      opportunities.set(opportunity, next);
      return send(200, next);
    }
    return send(404, { error: 'not found' });
  });

  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}/api`,
    port: actual,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
