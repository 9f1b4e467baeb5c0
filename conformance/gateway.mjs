// Runs the MCP conformance server suite through Deputy's gateway: it starts server-everything,
// a Deputy whose only connection is that server, gets a gateway access token for a test agent,
// and runs run.mjs against the gateway with that token. Needs `npm run build` first.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import pino from 'pino';

import { startServerEverything } from './run.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { buildServer } = await import(join(ROOT, 'dist/src/api/server.js'));
const { Deputy } = await import(join(ROOT, 'dist/src/deputy.js'));
const { parsePolicy } = await import(join(ROOT, 'dist/src/model/validate.js'));
const { gatewayToken } = await import(join(ROOT, 'dist/examples/acme/runtime.js'));

// The gateway may fail only where the upstream fails on its own.
const direct = await baselineOf(join(ROOT, 'conformance/baseline.yml'));
const added = [...(await baselineOf(join(ROOT, 'conformance/gateway-baseline.yml')))].filter(
  (scenario) => !direct.has(scenario),
);
if (added.length > 0) {
  console.error(`gateway-baseline.yml lists failures the upstream does not have: ${added.join(', ')}`);
  process.exit(1);
}

const dataDir = mkdtempSync(join(tmpdir(), 'deputy-conformance-'));
const upstream = await startServerEverything(join(dataDir, 'server-everything.log'));
const upstreamUrl = new URL(upstream.url);

const parsed = parsePolicy({
  version: 1,
  workspace: { id: 'conformance' },
  agents: [{ id: 'tester' }],
  connections: [
    {
      id: 'everything',
      kind: 'mcp',
      url: upstream.url,
      hosts: [upstreamUrl.host],
      allow_addresses: ['loopback'],
    },
  ],
  bundles: [{ id: 'everything', tools: ['everything/**'] }],
  scopes: { workspace: { bundles: ['everything'] } },
});
if (!parsed.ok) throw new Error(parsed.issues.map((issue) => issue.message).join('; '));

const logger = pino({ level: 'silent' });
const deputy = await Deputy.open({ database: join(dataDir, 'deputy.db'), dataDir, logger });
const call = { actor: { type: 'cli', id: 'conformance' }, requestId: null };
await deputy.apply(parsed.policy, 0, 'conformance', call);

let exitCode = 2;
let app;
try {
  app = await listen();
  const url = app.url;
  const created = await deputy.createClient(
    { workspace: 'conformance', agent: 'tester', authMethod: 'client_secret_basic', label: 'conformance' },
    call,
  );
  const token = await gatewayToken(
    { url, clientId: created.client.clientId, clientSecret: created.secret },
    {},
  );
  // The runner is a child process, so this process keeps serving the gateway meanwhile.
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'conformance/run.mjs'),
      '--url',
      `${url}/mcp`,
      '--header',
      `Authorization: Bearer ${token}`,
      '--baseline',
      join(ROOT, 'conformance/gateway-baseline.yml'),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit' },
  );
  const [code] = await once(child, 'exit');
  exitCode = code ?? 2;
} finally {
  await app?.server.close();
  await deputy.close();
  await upstream.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);

async function baselineOf(path) {
  const { parse } = await import('yaml');
  return new Set(parse(await readFile(path, 'utf8')).server ?? []);
}

/** Listens on a free port; the issuer must be known before the routes are built. */
async function listen() {
  const server = await buildServer({ deputy, logger, publicUrl: 'http://127.0.0.1:0' });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const port = server.server.address().port;
  await server.close();
  const real = await buildServer({
    deputy,
    logger,
    publicUrl: `http://127.0.0.1:${port}`,
    gateway: { compartmentDir: join(dataDir, 'compartments') },
  });
  await real.listen({ host: '127.0.0.1', port });
  return { server: real, url: `http://127.0.0.1:${port}` };
}
