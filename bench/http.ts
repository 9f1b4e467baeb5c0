/**
 * HTTP evaluations: Deputy's AuthZEN endpoints against a bare Fastify route in the same
 * process, both loaded by one child process over loopback with the same requests.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';

import { buildServer } from '../src/api/server.js';
import { Deputy } from '../src/deputy.js';
import type { DecisionRequest } from '../src/engine/types.js';
import type { Policy } from '../src/model/policy.js';
import type { LoadJob, LoadReply, LoadResult } from './load.js';
import { formatInteger, type Measured } from './report.js';
import { toEvaluation } from './requests.js';

export const EVALUATION_PATH = '/access/v1/evaluation';
export const EVALUATIONS_PATH = '/access/v1/evaluations';

export interface HttpOptions {
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** Evaluations per batch request. */
  batchSize: number;
}

/** The servers under test and the child process that loads them. */
export interface HttpRig {
  readonly deputy: Deputy;
  readonly deputyPort: number;
  readonly barePort: number;
  readonly apiKey: string;
  readonly load: LoadClient;
  close(): Promise<void>;
}

/**
 * Starts Deputy on SQLite in a temporary directory with `policy` applied and a pep key, a bare
 * Fastify app, and the load child. Both servers listen on 127.0.0.1 at a free port.
 */
export async function startRig(policy: Policy): Promise<HttpRig> {
  const dir = await mkdtemp(join(tmpdir(), 'deputy-bench-http-'));
  const logger = pino({ level: 'silent' });
  const deputy = await Deputy.open({
    database: join(dir, 'deputy.db'),
    dataDir: dir,
    logger,
    env: {},
    refreshIntervalMs: 0,
  });
  const apps: FastifyInstance[] = [];
  let load: LoadClient | null = null;

  const close = async () => {
    load?.close();
    for (const app of apps) await app.close();
    await deputy.close();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await deputy.apply(policy, 0, 'bench', {
      actor: { type: 'cli', id: 'bench' },
      requestId: null,
    });
    const { key } = await deputy.keys.create('pep', 'bench');
    const server = await buildServer({ deputy, logger, publicUrl: 'http://127.0.0.1' });
    apps.push(server);
    const bare = bareApp();
    apps.push(bare);
    const deputyPort = await listen(server);
    const barePort = await listen(bare);
    load = new LoadClient();
    return { deputy, deputyPort, barePort, apiKey: key, load, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Builds a Fastify app with default options and POST routes that return a constant object. */
function bareApp(): FastifyInstance {
  const app = fastify();
  const answer = { decision: true, context: { reason: 'granted' } };
  const handler = async () => answer;
  app.post(EVALUATION_PATH, handler);
  app.post(EVALUATIONS_PATH, handler);
  return app;
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

/** The forked load generator; one job runs at a time. */
export class LoadClient {
  readonly #child: ChildProcess;

  constructor() {
    const script = fileURLToPath(new URL('./load.js', import.meta.url));
    // No inherited flags: a --cpu-prof of the parent must not profile the load generator too.
    this.#child = fork(script, [], { execArgv: [], stdio: 'inherit' });
  }

  /** Runs a job and returns its result with the CPU seconds the parent used meanwhile. */
  async run(job: LoadJob): Promise<LoadResult & { serverCpuSeconds: number }> {
    const server = sampleCpu(job.warmupMs, job.durationMs);
    const limitMs = job.warmupMs + job.durationMs + 30_000;
    const reply = await new Promise<LoadReply>((resolve, reject) => {
      const timeout = setTimeout(
        () => reject(new Error(`the load generator timed out after ${limitMs} ms`)),
        limitMs,
      );
      const onExit = (code: number | null) => {
        clearTimeout(timeout);
        reject(new Error(`the load generator exited with code ${code}`));
      };
      this.#child.once('exit', onExit);
      this.#child.once('message', (message: LoadReply) => {
        clearTimeout(timeout);
        this.#child.off('exit', onExit);
        resolve(message);
      });
      this.#child.send(job);
    });
    if (!reply.ok) throw new Error(`load generator: ${reply.message}`);
    return { ...reply.result, serverCpuSeconds: await server };
  }

  close(): void {
    if (this.#child.connected) this.#child.disconnect();
  }
}

/** Measures the CPU seconds this process uses from `delayMs` to `delayMs + durationMs` from now. */
function sampleCpu(delayMs: number, durationMs: number): Promise<number> {
  return new Promise((resolve) => {
    setTimeout(() => {
      const before = process.cpuUsage();
      setTimeout(() => {
        const used = process.cpuUsage(before);
        resolve((used.user + used.system) / 1e6);
      }, durationMs);
    }, delayMs);
  });
}

/** Measures single evaluations per second on Deputy and on the bare route, and their ratio. */
export async function measureSingle(
  rig: HttpRig,
  requests: readonly DecisionRequest[],
  options: HttpOptions,
): Promise<Measured> {
  const bodies = requests.slice(0, 1000).map((request) => JSON.stringify(toEvaluation(request)));
  const job = jobFor(rig, bodies, options);

  const bare = await rig.load.run({ ...job, port: rig.barePort });
  checkStatuses(bare, 'the bare route');
  const before = rig.deputy.audit.stats();
  const deputy = await rig.load.run({ ...job, port: rig.deputyPort });
  checkStatuses(deputy, 'Deputy');
  const sample = JSON.parse(deputy.sampleBody ?? '{}') as { decision?: unknown };
  if (typeof sample.decision !== 'boolean') {
    throw new Error(`Deputy returned no decision: ${deputy.sampleBody}`);
  }
  const audit = auditDelta(before, rig.deputy.audit.stats());

  const bareRate = bare.responses / bare.seconds;
  const deputyRate = deputy.responses / deputy.seconds;
  return {
    rows: [
      { metric: 'Deputy, evaluations per second', value: deputyRate, unit: 'per second' },
      { metric: 'Bare Fastify route, requests per second', value: bareRate, unit: 'per second' },
      {
        metric: 'Deputy ÷ bare Fastify',
        value: (deputyRate / bareRate) * 100,
        unit: 'percent',
        target: { kind: 'at least', value: 70 },
      },
      { metric: 'Deputy latency p50', value: deputy.latencyMs.p50, unit: 'milliseconds' },
      { metric: 'Deputy latency p99', value: deputy.latencyMs.p99, unit: 'milliseconds' },
      { metric: 'Bare latency p99', value: bare.latencyMs.p99, unit: 'milliseconds' },
    ],
    notes: [
      cpuNote('bare route', bare),
      cpuNote('Deputy', deputy),
      `Deputy recorded ${formatInteger(audit.events)} decision events in ` +
        `${formatInteger(audit.batches)} SQLite transactions (mean ${audit.mean.toFixed(1)} ` +
        'events per transaction) during the counted window and its warm-up.',
    ],
  };
}

/** Measures decisions per second through batches to `POST /access/v1/evaluations`. */
export async function measureBatch(
  rig: HttpRig,
  requests: readonly DecisionRequest[],
  options: HttpOptions,
): Promise<Measured> {
  const bodies: string[] = [];
  for (let start = 0; start + options.batchSize <= requests.length && bodies.length < 50;) {
    const items = requests.slice(start, start + options.batchSize).map(toEvaluation);
    bodies.push(JSON.stringify({ evaluations: items }));
    start += options.batchSize;
  }
  const job = jobFor(rig, bodies, { ...options });
  const bytes = Math.round(bodies.reduce((sum, body) => sum + body.length, 0) / bodies.length);

  const bare = await rig.load.run({ ...job, port: rig.barePort, path: EVALUATIONS_PATH });
  checkStatuses(bare, 'the bare route');
  const deputy = await rig.load.run({ ...job, port: rig.deputyPort, path: EVALUATIONS_PATH });
  checkStatuses(deputy, 'Deputy');
  const sample = JSON.parse(deputy.sampleBody ?? '{}') as { evaluations?: unknown[] };
  if (sample.evaluations?.length !== options.batchSize) {
    throw new Error(
      `Deputy returned ${sample.evaluations?.length} evaluations, expected ${options.batchSize}`,
    );
  }

  const deputyRate = deputy.responses / deputy.seconds;
  const bareRate = bare.responses / bare.seconds;
  return {
    rows: [
      {
        metric: `Decisions per second (${options.batchSize} per request)`,
        value: deputyRate * options.batchSize,
        unit: 'per second',
        target: { kind: 'at least', value: 500_000 },
      },
      { metric: 'Deputy, batch requests per second', value: deputyRate, unit: 'per second' },
      {
        metric: 'Bare Fastify route, same bodies, requests per second',
        value: bareRate,
        unit: 'per second',
      },
      { metric: 'Deputy latency p99', value: deputy.latencyMs.p99, unit: 'milliseconds' },
    ],
    notes: [
      `Request bodies average ${formatInteger(bytes)} bytes of JSON.`,
      cpuNote('bare route', bare),
      cpuNote('Deputy', deputy),
    ],
  };
}

function jobFor(rig: HttpRig, bodies: string[], options: HttpOptions): LoadJob {
  return {
    port: rig.deputyPort,
    path: EVALUATION_PATH,
    headers: { authorization: `Bearer ${rig.apiKey}` },
    bodies,
    connections: options.connections,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
  };
}

function checkStatuses(result: LoadResult, server: string): void {
  const other = Object.entries(result.statuses).filter(([status]) => status !== '200');
  if (result.responses === 0) throw new Error(`${server} completed no request`);
  if (other.length > 0) {
    const list = other.map(([status, count]) => `${count} × ${status}`).join(', ');
    throw new Error(`${server} returned ${list}; first body: ${result.sampleBody}`);
  }
}

function cpuNote(server: string, result: LoadResult & { serverCpuSeconds: number }): string {
  const serverCores = result.serverCpuSeconds / result.seconds;
  const clientCores = result.cpuSeconds / result.seconds;
  return (
    `${server}: the server process used ${serverCores.toFixed(2)} cores and the load ` +
    `generator ${clientCores.toFixed(2)} cores; ${formatInteger(result.responses)} responses.`
  );
}

function auditDelta(
  before: ReturnType<Deputy['audit']['stats']>,
  after: ReturnType<Deputy['audit']['stats']>,
) {
  const events = after.events - before.events;
  const batches = after.batches - before.batches;
  return { events, batches, mean: batches === 0 ? 0 : events / batches };
}
