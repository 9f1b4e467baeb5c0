/**
 * Gateway overhead: MCP tool calls through Deputy's gateway next to calls to the same
 * upstream directly, in one run. The upstream is server-everything over Streamable HTTP.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import pino from 'pino';

import { gatewayToken } from '../examples/acme/runtime.js';
import { buildServer } from '../src/api/server.js';
import { Deputy } from '../src/deputy.js';
import { parsePolicy } from '../src/model/validate.js';
import type { McpLoadJob, McpLoadResult } from './mcp-load.js';
import type { Measured } from './report.js';

export interface GatewayBenchOptions {
  warmupMs: number;
  durationMs: number;
  /** Concurrent clients of the throughput run. */
  clients: number;
}

const TOOL = 'echo';

export async function measureGateway(options: GatewayBenchOptions): Promise<Measured> {
  const rows: Measured['rows'] = [];
  const notes: string[] = [];
  for (const synchronous of ['full', 'normal'] as const) {
    const measured = await measureOnce(options, synchronous);
    rows.push(...measured.rows);
    notes.push(...measured.notes);
  }
  return { rows, notes };
}

/** Direct and gateway runs, side by side, with the gateway on one SQLite durability mode. */
async function measureOnce(
  options: GatewayBenchOptions,
  synchronous: 'full' | 'normal',
): Promise<Measured> {
  const rig = await startRig(synchronous);
  const mode = `synchronous = ${synchronous.toUpperCase()}`;
  try {
    const direct = { url: rig.upstreamUrl, authorization: null, tool: TOOL };
    const gateway = {
      url: rig.gatewayUrl,
      authorization: `Bearer ${rig.token}`,
      tool: `everything__${TOOL}`,
    };
    const timing = { warmupMs: options.warmupMs, durationMs: options.durationMs };

    // Latency with one client, then throughput with several; each pair runs back to back.
    const latencyDirect = await rig.load({ ...direct, ...timing, clients: 1, latencies: true });
    const latencyGateway = await rig.load({ ...gateway, ...timing, clients: 1, latencies: true });
    const clients = options.clients;
    const throughputDirect = await rig.load({ ...direct, ...timing, clients, latencies: false });
    const throughputGateway = await rig.load({ ...gateway, ...timing, clients, latencies: false });

    const p50Direct = percentile(latencyDirect.latenciesUs, 0.5);
    const p50Gateway = percentile(latencyGateway.latenciesUs, 0.5);
    const rateDirect = throughputDirect.calls / throughputDirect.seconds;
    const rateGateway = throughputGateway.calls / throughputGateway.seconds;
    const errors =
      latencyDirect.errors +
      latencyGateway.errors +
      throughputDirect.errors +
      throughputGateway.errors;
    const p99 = (result: McpLoadResult) => percentile(result.latenciesUs, 0.99);
    return {
      rows: [
        {
          metric: `Direct p50 latency, 1 client (${mode} run)`,
          value: p50Direct,
          unit: 'microseconds',
        },
        {
          metric: `Gateway p50 latency, 1 client, ${mode}`,
          value: p50Gateway,
          unit: 'microseconds',
        },
        {
          metric: `Added p50 latency per tool call, ${mode}`,
          value: p50Gateway - p50Direct,
          unit: 'microseconds',
          target: { kind: 'below', value: 150 },
        },
        {
          metric: `Direct p99 latency, 1 client (${mode} run)`,
          value: p99(latencyDirect),
          unit: 'microseconds',
        },
        {
          metric: `Gateway p99 latency, 1 client, ${mode}`,
          value: p99(latencyGateway),
          unit: 'microseconds',
        },
        {
          metric: `Direct throughput, ${clients} clients (${mode} run)`,
          value: rateDirect,
          unit: 'per second',
        },
        {
          metric: `Gateway throughput, ${clients} clients, ${mode}`,
          value: rateGateway,
          unit: 'per second',
        },
        {
          metric: `Gateway throughput as a share of direct, ${mode}`,
          value: (rateGateway / rateDirect) * 100,
          unit: 'percent',
          target: { kind: 'at least', value: 60 },
        },
      ],
      notes: [
        `${mode}: ${errors} failed calls; ${rig.deputy.audit.stats().events} audit events ` +
          `written in ${rig.deputy.audit.stats().batches} transactions.`,
      ],
    };
  } finally {
    await rig.close();
  }
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

interface Rig {
  upstreamUrl: string;
  gatewayUrl: string;
  token: string;
  deputy: Deputy;
  load(job: McpLoadJob): Promise<McpLoadResult>;
  close(): Promise<void>;
}

export async function startRig(synchronous: 'full' | 'normal' = 'full'): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'deputy-bench-gateway-'));
  const upstream = await startEverything();
  const logger = pino({ level: 'silent' });
  const deputy = await Deputy.open({
    sqliteSynchronous: synchronous,
    database: join(dir, 'deputy.db'),
    dataDir: dir,
    logger,
    env: { DEPUTY_MASTER_KEY: Buffer.alloc(32, 9).toString('base64') },
  });
  const call = { actor: { type: 'cli' as const, id: 'bench' }, requestId: null };
  const parsed = parsePolicy({
    version: 1,
    workspace: { id: 'bench' },
    agents: [{ id: 'helper' }],
    connections: [
      {
        id: 'everything',
        kind: 'mcp',
        url: upstream.url,
        hosts: [new URL(upstream.url).host],
        allow_addresses: ['loopback'],
      },
    ],
    bundles: [{ id: 'everything', tools: ['everything/**'] }],
    scopes: { workspace: { bundles: ['everything'] } },
  });
  if (!parsed.ok) throw new Error(parsed.issues.map((issue) => issue.message).join('; '));
  await deputy.apply(parsed.policy, 0, 'bench', call);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const app = await buildServer({
    deputy,
    logger,
    publicUrl: url,
    gateway: { compartmentDir: join(dir, 'c') },
  });
  await app.listen({ host: '127.0.0.1', port });
  const created = await deputy.createClient(
    { workspace: 'bench', agent: 'helper', authMethod: 'client_secret_basic', label: 'bench' },
    call,
  );
  const token = await gatewayToken(
    { url, clientId: created.client.clientId, clientSecret: created.secret! },
    {},
  );

  const child = fork(fileURLToPath(new URL('./mcp-load.js', import.meta.url)), [], {
    execArgv: [],
  });
  return {
    upstreamUrl: upstream.url,
    gatewayUrl: `${url}/mcp`,
    token,
    deputy,
    load: (job) => runJob(child, job),
    async close() {
      child.kill();
      await app.close();
      await deputy.close();
      upstream.process.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function runJob(child: ChildProcess, job: McpLoadJob): Promise<McpLoadResult> {
  child.send(job);
  const [message] = (await once(child, 'message')) as [{ result?: McpLoadResult; error?: string }];
  if (message.error !== undefined) throw new Error(`load generator failed: ${message.error}`);
  return message.result!;
}

/** Starts server-everything's Streamable HTTP transport on a free port. */
async function startEverything(): Promise<{ url: string; process: ChildProcess }> {
  const require = createRequire(import.meta.url);
  const entry = join(
    dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
    'dist/index.js',
  );
  const port = await freePort();
  const child = spawn(process.execPath, [entry, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = `http://127.0.0.1:${port}/mcp`;
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      await fetch(url, { method: 'GET' });
      return { url, process: child };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  child.kill();
  throw new Error('server-everything did not start');
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
