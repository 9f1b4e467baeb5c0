/**
 * Benchmark results and their rendering: the Markdown page written to docs/benchmarks.md and
 * the summary printed at the end of a run.
 */
import { cpus, loadavg, release, totalmem } from 'node:os';

export type Unit =
  'per second' | 'milliseconds' | 'microseconds' | 'nanoseconds' | 'percent' | 'count';

/** A pass condition: the measured value must be at least, or below, `value`. */
export interface Target {
  readonly kind: 'at least' | 'below';
  readonly value: number;
}

/** One measured figure; a row without a target is a reference or a detail. */
export interface Row {
  readonly metric: string;
  readonly value: number;
  readonly unit: Unit;
  readonly target?: Target;
}

export interface Table {
  readonly caption: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** The figures, notes and tables a measurement returns. */
export interface Measured {
  rows: Row[];
  notes: string[];
  tables?: Table[];
}

/** A measurement as reported: its method, and its figures or the error that stopped it. */
export interface Section extends Measured {
  readonly title: string;
  readonly method: readonly string[];
  readonly error?: string;
}

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly speedMhz: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly date: string;
  /** One-minute load average when the run started. */
  readonly loadAverage: number;
  /** Cores that other processes kept busy in the second before the run. */
  readonly otherCores: number;
}

/** Describes the machine, and samples for one second how busy other processes keep it. */
export async function describeMachine(): Promise<Machine> {
  const otherCores = await measureOtherCpuUse(1000);
  const processors = cpus();
  return {
    cpu: processors[0]?.model.trim() ?? 'unknown',
    cores: processors.length,
    speedMhz: processors[0]?.speed ?? 0,
    memoryGiB: totalmem() / 2 ** 30,
    os: `${process.platform} ${release()} ${process.arch}`,
    node: process.version,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    loadAverage: loadavg()[0] ?? 0,
    otherCores,
  };
}

/** Returns the cores busy during `durationMs`, minus what this process used meanwhile. */
async function measureOtherCpuUse(durationMs: number): Promise<number> {
  const busy = () =>
    cpus().reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0);
  const busyBefore = busy();
  const ownBefore = process.cpuUsage();
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, durationMs));

  const own = process.cpuUsage(ownBefore);
  const elapsedMs = performance.now() - started;
  // os.cpus() times are in milliseconds, process.cpuUsage() in microseconds.
  const otherMs = busy() - busyBefore - (own.user + own.system) / 1000;
  return Math.max(0, otherMs / elapsedMs);
}

export function formatValue(value: number, unit: Unit): string {
  switch (unit) {
    case 'per second':
      return `${formatInteger(value)}/s`;
    case 'milliseconds':
      return `${formatDecimal(value)} ms`;
    case 'microseconds':
      return `${formatDecimal(value)} µs`;
    case 'nanoseconds':
      return `${value.toFixed(0)} ns`;
    case 'percent':
      return `${value.toFixed(1)}%`;
    case 'count':
      return Number.isInteger(value) ? formatInteger(value) : value.toFixed(1);
  }
}

export function formatInteger(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Formats with two decimals below 100 and none from 100 up, where decimals are noise. */
function formatDecimal(value: number): string {
  return value < 100 ? value.toFixed(2) : formatInteger(value);
}

function passes(row: Row): boolean | null {
  if (row.target === undefined) return null;
  return row.target.kind === 'at least'
    ? row.value >= row.target.value
    : row.value < row.target.value;
}

function targetCells(row: Row): [string, string, string] {
  if (row.target === undefined) return ['—', '—', '—'];
  const sign = row.target.kind === 'at least' ? '≥' : '<';
  const ratio = `${(row.value / row.target.value).toFixed(2)}×`;
  return [
    `${sign} ${formatValue(row.target.value, row.unit)}`,
    ratio,
    passes(row) ? 'pass' : 'fail',
  ];
}

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const escape = (cell: string) => cell.replaceAll('|', '\\|');
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((row) => `| ${row.map(escape).join(' | ')} |`),
  ];
}

const ROW_HEADER = ['Metric', 'Target', 'Measured', 'Measured ÷ target', 'Result'];

function rowCells(row: Row): string[] {
  const [target, ratio, result] = targetCells(row);
  return [row.metric, target, formatValue(row.value, row.unit), ratio, result];
}

export interface Page {
  readonly machine: Machine;
  readonly runSeconds: number;
  /** One-minute load average when the run ended, which includes the run itself. */
  readonly loadAverageAtEnd: number;
  readonly workload: Table[];
  readonly workloadNotes: readonly string[];
  readonly sections: readonly Section[];
}

/**
 * Notes on where the time goes, from CPU profiles of these measurements (`node --cpu-prof` on one of
 * `node dist/bench/run.js decisions|http|audit`). Kept in step with the code by hand.
 */
const LIMITS = [
  '- In-process decisions on the scaled workspace are bound by memory access. The same engine',
  '  runs 3 to 4 times faster when a few requests repeat than over 20,000 different ones,',
  '  because each decision reads scope, action and grant objects spread over many megabytes.',
  '- Every evaluation over HTTP writes one hash-chained audit event before it responds. Its',
  '  canonical JSON, SHA-256 and the SQLite insert run on the main thread, and the WAL fsync of',
  '  each group commit blocks the event loop, so HTTP single and batch figures follow the',
  '  audit log more than the engine. Batches of 100 write 100 events each.',
  '- The audit log reaches about a fifth of plain inserts of the same rows: per event it',
  '  canonicalizes, hashes and checks the record, and each append is a promise settled after',
  '  the commit. Moving the writer to a worker thread is the next step, and is not done.',
  '- A tool call through the gateway adds a loopback HTTP round trip between the client and',
  '  Deputy, the token check, the decision with its audit commit before the call is',
  '  forwarded, and the outcome event after it. One in-process trace with synchronous =',
  '  NORMAL measured medians of 0.17 ms for the decision with its commit and about 1.4 ms for',
  '  the rest of the gateway. server-everything took 2.2 ms to respond to a raw `tools/call`.',
  '  With synchronous = FULL each commit also waits for an fsync, which blocks the event loop',
  '  and so limits throughput more than the upstream does.',
];

/** Renders the whole benchmark page. */
export function renderPage(page: Page): string {
  const { machine } = page;
  const lines = [
    '# Benchmarks',
    '',
    'Every figure on this page comes from one run of `npm run bench` (the scripts in `bench/`) on',
    'the machine below; the script rewrites this page. Figures vary between runs, far more on',
    'shared or virtual machines than on dedicated ones, so compare runs on one machine only.',
    '',
    '## Machine',
    '',
    ...markdownTable(
      ['Property', 'Value'],
      [
        ['CPU', describeCpu(machine)],
        ['Memory', `${machine.memoryGiB.toFixed(1)} GiB`],
        ['Operating system', machine.os],
        ['Node.js', machine.node],
        ['Date', machine.date],
        ['Run time', `${page.runSeconds.toFixed(0)} s`],
        [
          'Load average (1 minute) at start and end',
          `${machine.loadAverage.toFixed(2)}, ${page.loadAverageAtEnd.toFixed(2)}`,
        ],
        ['Cores used by other processes just before the run', machine.otherCores.toFixed(2)],
      ],
    ),
    '',
    ...busyWarning(machine),
    '## Summary',
    '',
    ...markdownTable(['Measurement', ...ROW_HEADER], summaryRows(page.sections)),
    '',
    'The ratio is measured ÷ target: a throughput target passes at 1.00× or more, a latency',
    'ceiling below 1.00×.',
    '',
    '## What limits these figures',
    '',
    ...LIMITS,
    '',
    '## Workload',
    '',
    ...page.workloadNotes,
    '',
  ];
  for (const table of page.workload) lines.push(...renderTable(table));

  page.sections.forEach((section, index) => {
    lines.push(`## ${index + 1}. ${section.title}`, '', ...section.method, '');
    if (section.error !== undefined) {
      lines.push(`**failed: ${section.error}**`, '');
      return;
    }
    lines.push(...markdownTable(ROW_HEADER, section.rows.map(rowCells)), '');
    for (const table of section.tables ?? []) lines.push(...renderTable(table));
    for (const note of section.notes) lines.push(`- ${note}`);
    if (section.notes.length > 0) lines.push('');
  });
  return lines.join('\n');
}

function describeCpu(machine: Machine): string {
  // Virtual machines often report a clock speed of 0.
  const speed = machine.speedMhz > 0 ? ` at ${machine.speedMhz} MHz` : '';
  return `${machine.cpu}, ${machine.cores} cores${speed}`;
}

/** Cores in use by other processes above which the page warns that its figures are low. */
const BUSY_CORES = 0.25;

/** Warns when other processes kept the CPU busy as the run started. */
function busyWarning(machine: Machine): string[] {
  if (machine.otherCores < BUSY_CORES) return [];
  return [
    `**Other processes kept ${machine.otherCores.toFixed(2)} of ${machine.cores} cores busy ` +
      'when this run started, so these figures understate what the code does on an idle ' +
      'machine.**',
    '',
  ];
}

function renderTable(table: Table): string[] {
  return [table.caption, '', ...markdownTable(table.header, table.rows), ''];
}

function summaryRows(sections: readonly Section[]): string[][] {
  const rows: string[][] = [];
  for (const section of sections) {
    if (section.error !== undefined) {
      rows.push([section.title, '', '', `failed: ${section.error}`, '', 'fail']);
      continue;
    }
    for (const row of section.rows) {
      if (row.target !== undefined) rows.push([section.title, ...rowCells(row)]);
    }
  }
  return rows;
}

/** Prints every figure on one line, with its target and result where it has one. */
export function printSummary(sections: readonly Section[]): void {
  for (const section of sections) {
    if (section.error !== undefined) {
      console.log(`${section.title}: failed: ${section.error}`);
      continue;
    }
    for (const row of section.rows) {
      const [target, ratio, result] = targetCells(row);
      const measured = formatValue(row.value, row.unit);
      const verdict = row.target === undefined ? '' : `  (target ${target}, ${ratio}, ${result})`;
      console.log(`${section.title}: ${row.metric}: ${measured}${verdict}`);
    }
  }
}
