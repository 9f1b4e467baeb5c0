import { afterAll, beforeAll, it } from 'vitest';
import { connect, tokenFor, type GatewayTestEnvironment, startGatewayEnvironment } from './support.js';
let environment: GatewayTestEnvironment;
beforeAll(async () => { environment = await startGatewayEnvironment(); });
afterAll(async () => { await environment?.close(); });
it('scratch', async () => {
  const client = await connect(environment, { channel: 'dm:U02BOB', invoker: 'U02BOB' }, 'modern');
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => client.callTool({ name: 'memory__create_entities', arguments: { entities: [{ name: `e${i}`, entityType: 'n', observations: [] }] } })));
  console.log(results.map((r) => r.status + (r.status === 'fulfilled' ? String((r.value as any).isError) : String(r.reason))).join(' | '));
  const graph = await client.callTool({ name: 'memory__read_graph', arguments: {} });
  console.log((graph.content as any)[0].text.slice(0, 2000));
  const token = await tokenFor(environment, { channel: 'C01GENERAL' });
  const r = await fetch(`${environment.acme.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: 'x'.repeat(5_000_000) });
  console.log(r.status, await r.text());
  const r2 = await fetch(`${environment.acme.url}/mcp`, { method: 'POST', headers: { authorization: `Basic abc`, 'content-type': 'application/json' }, body: '{}' });
  console.log(r2.status, r2.headers.get('www-authenticate'), await r2.text());
});
