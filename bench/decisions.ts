/**
 * In-process decisions: `PolicyEngine.decide` in a tight loop on the main thread, which runs
 * JavaScript on one core. The throughput loop and the latency sample use the same requests.
 */
import { PolicyEngine } from '../src/engine/engine.js';
import type { DecisionRequest } from '../src/engine/types.js';
import type { Policy } from '../src/model/policy.js';
import { formatInteger, type Measured } from './report.js';

export interface DecisionOptions {
  /** Milliseconds of decisions before anything is measured, so the JIT has optimized. */
  warmupMs: number;
  /** Milliseconds of the throughput loop. */
  durationMs: number;
  /** Calls timed one by one for the latency percentiles. */
  latencySamples: number;
}

/** A policy and requests drawn from it. */
export interface DecisionWorkload {
  readonly policy: Policy;
  readonly requests: readonly DecisionRequest[];
}

/**
 * Measures decisions per second on one core, per-call latency and the cost of the timer on
 * `workload`. `reference` (the unscaled example) runs for half the time, for comparison.
 */
export function measureDecisions(
  workload: DecisionWorkload,
  reference: DecisionWorkload,
  options: DecisionOptions,
): Measured {
  const { requests } = workload;
  const engine = loadEngine(workload.policy);
  const reasons = countReasons(engine, requests);

  runFor(engine, requests, options.warmupMs);
  const throughput = runFor(engine, requests, options.durationMs);
  const timer = timerOverhead(options.latencySamples);
  const latency = timeCalls(engine, requests, options.latencySamples, timer.median);

  const referenceEngine = loadEngine(reference.policy);
  runFor(referenceEngine, reference.requests, options.warmupMs / 2);
  const unscaled = runFor(referenceEngine, reference.requests, options.durationMs / 2);

  return {
    rows: [
      {
        metric: 'Decisions per second, one core',
        value: throughput.perSecond,
        unit: 'per second',
        target: { kind: 'at least', value: 2_000_000 },
      },
      { metric: 'Latency p50', value: latency.p50 / 1000, unit: 'microseconds' },
      {
        metric: 'Latency p99',
        value: latency.p99 / 1000,
        unit: 'microseconds',
        target: { kind: 'below', value: 5 },
      },
      { metric: 'Latency p99.9', value: latency.p999 / 1000, unit: 'microseconds' },
      { metric: 'Timer overhead per call (subtracted)', value: timer.median, unit: 'nanoseconds' },
      {
        metric: 'Reference: decisions per second on the unscaled acme example',
        value: unscaled.perSecond,
        unit: 'per second',
      },
    ],
    notes: [
      `${formatInteger(throughput.calls)} decisions in ${throughput.seconds.toFixed(2)} s, ` +
        `${(throughput.allowedShare * 100).toFixed(1)}% allowed.`,
      `Process CPU time during the loop was ${(throughput.cpuShare * 100).toFixed(0)}% of wall ` +
        'time (above 100% means garbage collection threads ran beside the loop).',
      `The timer overhead is the median of ${formatInteger(options.latencySamples)} empty ` +
        `process.hrtime.bigint() pairs (p99 ${timer.p99} ns); it is subtracted from each sample.`,
      'The reference row runs the same procedure on `examples/acme/deputy.yaml` as it is ' +
        '(6 bundles, 7 channels) with a request mix drawn from it, for 1 s after 0.5 s of warm-up.',
    ],
    tables: [
      {
        caption: 'Decisions of the request mix, by reason:',
        header: ['Reason', 'Share'],
        rows: [...reasons.entries()]
          .sort((left, right) => right[1] - left[1])
          .map(([reason, count]) => [reason, `${((count / requests.length) * 100).toFixed(1)}%`]),
      },
    ],
  };
}

function loadEngine(policy: Policy): PolicyEngine {
  const engine = new PolicyEngine();
  engine.load(policy, 1);
  return engine;
}

function countReasons(engine: PolicyEngine, requests: readonly DecisionRequest[]) {
  const reasons = new Map<string, number>();
  for (const request of requests) {
    const { reason } = engine.decide(request);
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  return reasons;
}

/** Loops over the whole array until `durationMs` has passed, checking the clock per pass. */
function runFor(engine: PolicyEngine, requests: readonly DecisionRequest[], durationMs: number) {
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  const end = start + BigInt(durationMs) * 1_000_000n;
  let calls = 0;
  let allowed = 0;
  let now = start;

  while (now < end) {
    for (let index = 0; index < requests.length; index++) {
      if (engine.decide(requests[index] as DecisionRequest).allowed) allowed++;
    }
    calls += requests.length;
    now = process.hrtime.bigint();
  }

  const seconds = Number(now - start) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    calls,
    seconds,
    perSecond: calls / seconds,
    allowedShare: allowed / calls,
    cpuShare: (cpu.user + cpu.system) / 1e6 / seconds,
  };
}

/** Times two back-to-back `process.hrtime.bigint()` calls, a cost every latency sample includes. */
function timerOverhead(samples: number) {
  const durations = new Float64Array(samples);
  for (let index = 0; index < samples; index++) {
    const start = process.hrtime.bigint();
    durations[index] = Number(process.hrtime.bigint() - start);
  }
  durations.sort();
  return { median: percentile(durations, 0.5), p99: percentile(durations, 0.99) };
}

function timeCalls(
  engine: PolicyEngine,
  requests: readonly DecisionRequest[],
  samples: number,
  overhead: number,
) {
  const durations = new Float64Array(samples);
  for (let index = 0; index < samples; index++) {
    const request = requests[index % requests.length] as DecisionRequest;
    const start = process.hrtime.bigint();
    engine.decide(request);
    const elapsed = Number(process.hrtime.bigint() - start) - overhead;
    durations[index] = elapsed > 0 ? elapsed : 0;
  }
  durations.sort();
  return {
    p50: percentile(durations, 0.5),
    p99: percentile(durations, 0.99),
    p999: percentile(durations, 0.999),
  };
}

/** Returns the value at quantile `q` of sorted values, in their unit. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const index = Math.min(sorted.length - 1, Math.floor(q * sorted.length));
  return sorted[index] ?? Number.NaN;
}
