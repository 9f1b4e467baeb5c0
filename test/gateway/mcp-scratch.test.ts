import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { it } from 'vitest';
import { startAcme } from '../../dist/examples/acme/environment.js';
import { gatewayToken, connectGateway } from '../../dist/examples/acme/runtime.js';

const show = (x: unknown) => console.log(JSON.stringify(x, null, 1));
async function attempt(f: () => Promise<unknown>) {
  try { show(await f()); } catch (e) { const err = e as any; show({ name: err.name, ctor: err.constructor?.name, message: err.message, code: err.code, data: err.data, keys: Object.keys(err) }); }
}
it('scratch', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'scratch-'));
  const filesDir = join(dataDir, 'files');
  cpSync('examples/acme/files', filesDir, { recursive: true });
  const env = await startAcme({ dataDir, logger: pino({ level: 'silent' }), port: 0, crmPort: 0, masterKey: randomBytes(32).toString('base64'), filesDir });
  const creds = { url: env.url, clientId: env.client.id, clientSecret: env.client.secret };
  for (const [channel, invoker] of [['C02ENG', 'U01ALICE'], ['C01GENERAL', undefined], ['C03DATA', undefined], ['C04LEGAL', 'U03CAROL'], ['dm:U01ALICE', 'U01ALICE'], [undefined, undefined]]) {
    const token = await gatewayToken(creds, { channel, invoker });
    const client = await connectGateway(env.url, token, 'legacy');
    console.log(channel, client.getNegotiatedProtocolVersion(), (await client.listTools()).tools.map((t) => t.name).join(' '));
    await client.close();
  }
  const eng = await connectGateway(env.url, await gatewayToken(creds, { channel: 'C02ENG', invoker: 'U01ALICE' }));
  await attempt(() => eng.callTool({ name: 'files__write_file', arguments: { path: join(filesDir, 'x.md'), content: 'hi' } }));
  await attempt(() => eng.callTool({ name: 'files__read_text_file', arguments: { path: join(filesDir, 'handbook.md') } }));
  await attempt(() => eng.callTool({ name: 'files__read_text_file', arguments: { path: '/etc/passwd' } }));
  await attempt(() => eng.callTool({ name: 'nope__x', arguments: {} }));
  await attempt(() => eng.callTool({ name: 'memory__delete_entities', arguments: { entityNames: ['a'] } }));
  const gen = await connectGateway(env.url, await gatewayToken(creds, { channel: 'C01GENERAL' }));
  await attempt(() => gen.callTool({ name: 'files__write_file', arguments: { path: join(filesDir, 'y.md'), content: 'hi' } }));
  await attempt(() => gen.callTool({ name: 'warehouse__query', arguments: { sql: 'select 1' } }));
  const data = await connectGateway(env.url, await gatewayToken(creds, { channel: 'C03DATA' }));
  await attempt(() => data.callTool({ name: 'warehouse__query', arguments: { sql: 'select count(*) from orders' } }));
  await attempt(() => data.callTool({ name: 'warehouse__query', arguments: { sql: 'COMMIT; CREATE TABLE smuggled (id int)' } }));
  await attempt(() => data.callTool({ name: 'warehouse__query', arguments: { sql: 'select * from finance.payroll' } }));
  const res = await fetch(`${env.url}/admin/v1/workspaces/acme/agents/helper/disable`, { method: 'POST', headers: { authorization: `Bearer ${env.adminKey}`, 'content-type': 'application/json' }, body: '{}' });
  console.log(res.status, await res.text());
  await attempt(() => data.callTool({ name: 'warehouse__query', arguments: { sql: 'select 1' } }));
  await attempt(() => data.listTools());
  await attempt(() => gatewayToken(creds, { channel: 'C03DATA' }));
  await env.close();
});
