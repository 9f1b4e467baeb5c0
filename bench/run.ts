/**
 * Runs every benchmark once on this machine, writes docs/benchmarks.md and prints a summary.
 *
 *   node dist/bench/run.js               all measurements, then the page is rewritten
 *   node dist/bench/run.js decisions     only the named ones (decisions, http, audit, tokens), printed
 *                                        without touching the page
 *
 * Each measurement catches its own errors, so one failure shows as "failed: …" on the page and
 * the others still run.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

import type { DecisionRequest } from '../src/engine/types.js';
import type { Policy } from '../src/model/policy.js';
import type { HttpRig } from './http.js';
import {
  describeMachine,
  formatInteger,
  type Measured,
  printSummary,
  renderPage,
  type Section,
  type Table,
} from './report.js';
import { METHODS } from './methods.js';

const MEASUREMENTS = ['decisions', 'http', 'audit', 'tokens', 'gateway'] as const;
type Measurement = (typeof MEASUREMENTS)[number];

const PAGE = new URL('../../docs/benchmarks.md', import.meta.url);
const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test?schema=deputy_bench';
const REQUEST_COUNT = 20_000;

const DECISIONS = { warmupMs: 1000, durationMs: 2000, latencySamples: 200_000 };
const HTTP = { connections: 64, warmupMs: 1000, durationMs: 5000, batchSize: 100 };
const AUDIT = { concurrency: 256, warmupMs: 500, durationMs: 3000, referenceMs: 1000 };
const TOKENS = { durationMs: 1500 };
const GATEWAY = { warmupMs: 1000, durationMs: 3000, clients: 10 };

interface Workload {
  policy: Policy;
  requests: DecisionRequest[];
  tables: Table[];
  notes: readonly string[];
}

async function main(): Promise<void> {
  const selected = parseSelection(process.argv.slice(2));
  const started = performance.now();
  const machine = await describeMachine();
  const workload = await buildWorkload();
  const sections: Section[] = [];

  if (selected.has('decisions')) {
    sections.push(
      await measure('In-process decisions', METHODS.decisions, async () => {
        const { measureDecisions } = await import('./decisions.js');
        const { generateRequests } = await import('./requests.js');
        const { loadAcme } = await import('./scale.js');
        const acme = loadAcme();
        const reference = { policy: acme, requests: generateRequests(acme, REQUEST_COUNT) };
        return measureDecisions(required(workload), reference, DECISIONS);
      }),
    );
  }
  if (selected.has('http')) sections.push(...(await measureHttp(workload)));
  if (selected.has('audit')) {
    sections.push(
      await measure('Durable audit events, SQLite', METHODS.auditSqlite, async () => {
        const { measureSqliteAudit } = await import('./audit.js');
        return await measureSqliteAudit(AUDIT);
      }),
      await measure('Durable audit events, PostgreSQL', METHODS.auditPostgres, async () => {
        const { measurePostgresAudit } = await import('./audit.js');
        return await measurePostgresAudit(POSTGRES_URL, AUDIT);
      }),
    );
  }

  if (selected.has('tokens')) {
    sections.push(
      await measure('Token signing and verification', METHODS.tokens, async () => {
        const { measureTokens } = await import('./tokens.js');
        return await measureTokens(TOKENS);
      }),
    );
  }

  if (selected.has('gateway')) {
    sections.push(
      await measure('MCP gateway overhead', METHODS.gateway, async () => {
        const { measureGateway } = await import('./gateway.js');
        return await measureGateway(GATEWAY);
      }),
    );
  }

  const runSeconds = (performance.now() - started) / 1000;
  if (selected.size === MEASUREMENTS.length) {
    const page = renderPage({
      machine,
      runSeconds,
      loadAverageAtEnd: loadavg()[0] ?? 0,
      workload: workload instanceof Error ? [] : workload.tables,
      workloadNotes: workload instanceof Error ? [`failed: ${workload.message}`] : workload.notes,
      sections,
    });
    writeFileSync(PAGE, page);
    progress(`wrote ${fileURLToPath(PAGE)}`);
  }
  printSummary(sections);
  progress(`finished in ${runSeconds.toFixed(1)} s`);
}

function parseSelection(names: readonly string[]): Set<Measurement> {
  if (names.length === 0) return new Set(MEASUREMENTS);
  for (const name of names) {
    if (!(MEASUREMENTS as readonly string[]).includes(name)) {
      throw new Error(`unknown measurement "${name}": use ${MEASUREMENTS.join(', ')}`);
    }
  }
  return new Set(names as Measurement[]);
}

/** Builds the scaled policy and the request mix, or returns why that failed. */
async function buildWorkload(): Promise<Workload | Error> {
  try {
    const { generateRequests, REQUEST_MIX } = await import('./requests.js');
    const { buildScaledPolicy, loadAcme, summarizePolicy } = await import('./scale.js');
    const now = Date.now();
    const policy = buildScaledPolicy(loadAcme(), now);
    const requests = generateRequests(policy, REQUEST_COUNT);
    const summary = summarizePolicy(policy, now);
    const { channels } = summary;
    return {
      policy,
      requests,
      notes: METHODS.workload,
      tables: [
        {
          caption: 'The scaled workspace (validated with `parsePolicy`):',
          header: ['Part', 'Count'],
          rows: [
            ['Bundles (6 from acme)', formatInteger(summary.bundles)],
            ['Grants, without those implied by domains and tools', formatInteger(summary.grants)],
            ['Identity-aware grants', formatInteger(summary.identityAwareGrants)],
            ['Grants that require approval', formatInteger(summary.approvalGrants)],
            [
              'Channels (7 from acme): public, private, shared',
              `${channels.public}, ${channels.private}, ${channels.shared}`,
            ],
            ['Bundle attachments in channels', formatInteger(summary.attachments)],
            [
              'Time-boxed attachments, of which expired',
              `${summary.timeBoxedAttachments}, ${summary.expiredAttachments}`,
            ],
            ['Members, guardrails', `${summary.members}, ${summary.guardrails}`],
          ],
        },
        {
          caption: `The request mix (${formatInteger(requests.length)} requests, generated once):`,
          header: ['Kind of request', 'Share'],
          rows: REQUEST_MIX.map((entry) => [entry.kind, `${(entry.share * 100).toFixed(0)}%`]),
        },
      ],
    };
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

function required(workload: Workload | Error): Workload {
  if (workload instanceof Error) throw new Error(`no workload: ${workload.message}`);
  return workload;
}

async function measureHttp(workload: Workload | Error): Promise<Section[]> {
  let rig: HttpRig | Error;
  let http: typeof import('./http.js') | null = null;
  try {
    http = await import('./http.js');
    rig = await http.startRig(required(workload).policy);
  } catch (error) {
    rig = error as Error;
  }
  try {
    const started = () => {
      if (rig instanceof Error || http === null) {
        throw new Error(`the servers did not start: ${(rig as Error).message}`);
      }
      return { rig, http };
    };
    return [
      await measure('HTTP single evaluations', METHODS.httpSingle, () => {
        const { rig, http } = started();
        return http.measureSingle(rig, required(workload).requests, HTTP);
      }),
      await measure('HTTP batch evaluations', METHODS.httpBatch, () => {
        const { rig, http } = started();
        return http.measureBatch(rig, required(workload).requests, HTTP);
      }),
    ];
  } finally {
    if (!(rig instanceof Error)) await rig.close();
  }
}

/** Runs one measurement and turns an error into a failed section. */
async function measure(
  title: string,
  method: readonly string[],
  run: () => Measured | Promise<Measured>,
): Promise<Section> {
  progress(`measuring: ${title}`);
  const started = performance.now();
  try {
    const measured = await run();
    progress(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return { title, method, ...measured };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    progress(`  failed: ${message}`);
    return { title, method, rows: [], notes: [], error: message };
  }
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

await main();
