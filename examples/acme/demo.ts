/**
 * `npm run demo`: plays an agent runtime against the example workspace, in several channels
 * and a DM, then prints the audit trail and verifies it. It starts its own copy of the
 * example in a temporary directory, on free ports, so it can run next to `npm start`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Client } from '@modelcontextprotocol/client';
import pino from 'pino';

import { readAuditEvents } from '../../src/audit/read.js';
import type { StoredAuditEvent } from '../../src/audit/event.js';
import { startAcme, REPOSITORY_ROOT } from './environment.js';
import { connectGateway, gatewayToken, type Placement } from './runtime.js';

const dataDir = mkdtempSync(join(tmpdir(), 'deputy-demo-'));
const filesDir = join(dataDir, 'files');
cpSync(join(REPOSITORY_ROOT, 'examples/acme/files'), filesDir, { recursive: true });
const environment = await startAcme({
  dataDir,
  filesDir,
  logger: pino({ level: 'silent' }),
  port: 0,
  crmPort: 0,
});
const { url } = environment;
const credentials = {
  url,
  clientId: environment.client.id,
  clientSecret: environment.client.secret,
};

function step(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}

function show(label: string, value: string): void {
  process.stdout.write(`   ${label.padEnd(34)} ${value}\n`);
}

async function session(placement: Placement): Promise<{ client: Client; token: string }> {
  const token = await gatewayToken(credentials, placement);
  return { client: await connectGateway(url, token), token };
}

/** Calls a tool and describes the outcome in one line. */
async function call(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  try {
    const result = await client.callTool({ name, arguments: args });
    const text = (result.content as Array<{ type: string; text?: string }>)
      .map((block) => block.text ?? '')
      .join(' ')
      .replace(/\s+/g, ' ');
    return `${result.isError ? 'tool error' : 'ok'}: ${text.slice(0, 70)}`;
  } catch (error) {
    const { code, message } = error as { code?: number | string; message: string };
    // The SDK client reports an HTTP rejection with its own code and the response body.
    const status = /"error":"([a-z_]+)"/.exec(message)?.[1];
    if (status !== undefined) return `rejected by the gateway: ${status}`;
    return `error ${code ?? ''}: ${message.slice(0, 90)}`;
  }
}

async function proxyGet(token: string, path: string): Promise<string> {
  const response = await fetch(`${url}/proxy/crm${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = (await response.json()) as Record<string, unknown>;
  return `${response.status} ${JSON.stringify(body).slice(0, 70)}`;
}

try {
  step('#engineering, asked by Bob: the engineering bundle adds write tools');
  const engineering = await session({ channel: 'C02ENG', invoker: 'U02BOB' });
  const listed = await engineering.client.listTools();
  show('tools listed', String(listed.tools.length));
  show(
    'files__read_text_file handbook.md',
    await call(engineering.client, 'files__read_text_file', {
      path: join(filesDir, 'handbook.md'),
    }),
  );
  show(
    'files__write_file notes.md',
    await call(engineering.client, 'files__write_file', {
      path: join(filesDir, 'notes.md'),
      content: 'Deploy moved to Thursday.\n',
    }),
  );

  step('#general, asked by Bob: the same tool, the baseline only');
  const general = await session({ channel: 'C01GENERAL', invoker: 'U02BOB' });
  show('tools listed', String((await general.client.listTools()).tools.length));
  show(
    'files__write_file notes.md',
    await call(general.client, 'files__write_file', {
      path: join(filesDir, 'notes.md'),
      content: 'x',
    }),
  );
  show(
    'memory__create_entities',
    await call(general.client, 'memory__create_entities', {
      entities: [
        { name: 'release-train', entityType: 'process', observations: ['ships on Thursdays'] },
      ],
    }),
  );
  show(
    'memory__delete_entities (guardrail)',
    await call(general.client, 'memory__delete_entities', { entityNames: ['release-train'] }),
  );

  step('DM with Alice: the agent acts as Alice, with its own memory compartment');
  const dm = await session({ channel: 'dm:U01ALICE', invoker: 'U01ALICE' });
  show(
    'memory__create_entities',
    await call(dm.client, 'memory__create_entities', {
      entities: [
        { name: 'alice-1on1', entityType: 'note', observations: ['asked about promotion'] },
      ],
    }),
  );
  show(
    'memory__search_nodes in the DM',
    await call(dm.client, 'memory__search_nodes', { query: 'alice-1on1' }),
  );
  show(
    'memory__search_nodes in #general',
    await call(general.client, 'memory__search_nodes', { query: 'alice-1on1' }),
  );

  step("#data, asked by Erin: SQL through the agent's own read-only database role");
  const data = await session({ channel: 'C03DATA', invoker: 'U05ERIN' });
  if (environment.warehouse.ok) {
    show(
      'select count(*) from orders',
      await call(data.client, 'warehouse__query', { sql: 'select count(*) from orders' }),
    );
    show(
      'COMMIT; CREATE TABLE smuggled',
      await call(data.client, 'warehouse__query', {
        sql: 'COMMIT; CREATE TABLE smuggled (id int)',
      }),
    );
    show(
      'select * from finance.payroll',
      await call(data.client, 'warehouse__query', { sql: 'select * from finance.payroll' }),
    );
  } else {
    show('warehouse', `skipped: ${environment.warehouse.reason}`);
  }
  show(
    'warehouse__query from #general',
    await call(general.client, 'warehouse__query', { sql: 'select 1' }),
  );

  step('#sales, asked by Dave: the CRM through the egress proxy, key injected by Deputy');
  const sales = await session({ channel: 'C05SALES', invoker: 'U04DAVE' });
  show('GET /api/accounts/globex', await proxyGet(sales.token, '/api/accounts/globex'));
  show(
    'GET /api/accounts/globex from #general',
    await proxyGet(general.token, '/api/accounts/globex'),
  );

  step('Kill switch: an admin disables the agent while it runs');
  const disabled = await fetch(`${url}/admin/v1/workspaces/acme/agents/helper/disable`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${environment.adminKey}`,
      'content-type': 'application/json',
    },
    body: '{}',
  });
  show('POST .../agents/helper/disable', String(disabled.status));
  show(
    'files__read_text_file in #engineering',
    await call(engineering.client, 'files__read_text_file', {
      path: join(filesDir, 'handbook.md'),
    }),
  );
  show('GET /api/accounts/globex in #sales', await proxyGet(sales.token, '/api/accounts/globex'));

  for (const open of [engineering, general, dm, data, sales]) await open.client.close();
} finally {
  await environment.close();
}

step('Audit trail (tool calls, proxied requests and admin changes)');
const database = (await import('../../src/storage/database.js')).openDatabase;
const db = await database(join(dataDir, 'deputy.db'));
const events: StoredAuditEvent[] = [];
for (let after = 0; ;) {
  const page = await readAuditEvents(db, { afterSeq: after, limit: 1000 });
  events.push(...page.events);
  if (page.nextAfterSeq === null) break;
  after = page.nextAfterSeq;
}
await db.close();
for (const event of events.filter((entry) =>
  ['tool.call', 'http.request', 'agent.disable'].includes(entry.type),
)) {
  const detail = event.detail ?? {};
  const what = String(detail.tool ?? detail.path ?? event.resource ?? '');
  const outcome = String(detail.outcome ?? detail.status ?? '');
  process.stdout.write(
    `   ${String(event.seq).padStart(4)} ${event.type.padEnd(13)} ${(event.identity ?? '').padEnd(22)} ` +
      `${(event.scope ?? '').padEnd(19)} ${what.padEnd(28)} ${(event.decision ?? '').padEnd(5)} ` +
      `${(event.reason ?? '').padEnd(22)} ${outcome}\n`,
  );
}

step('deputy audit verify');
const verify = execFileSync(
  process.execPath,
  [
    join(REPOSITORY_ROOT, 'bin/deputy.js'),
    'audit',
    'verify',
    '--db',
    join(dataDir, 'deputy.db'),
    '--data-dir',
    dataDir,
  ],
  { encoding: 'utf8' },
);
process.stdout.write(verify.replace(/^/gm, '   '));
writeFileSync(join(dataDir, 'done'), '');
rmSync(dataDir, { recursive: true, force: true });
