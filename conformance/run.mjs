#!/usr/bin/env node
// Runs the MCP conformance server suite (@modelcontextprotocol/conformance) against an MCP server
// over Streamable HTTP and compares the per-scenario results with conformance/baseline.yml.
// See conformance/README.md for usage.
import { spawn } from 'node:child_process';
import { createWriteStream, realpathSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';

const CONFORMANCE_DIR = dirname(fileURLToPath(import.meta.url));
const requireFromHere = createRequire(import.meta.url);

const SHIM_PATH = join(CONFORMANCE_DIR, 'node20-shim.mjs');
const DEFAULT_BASELINE_PATH = join(CONFORMANCE_DIR, 'baseline.yml');
const SUITES = ['active', 'all', 'pending'];
const DEFAULT_TIMEOUT_SECONDS = 300;
const SERVER_START_TIMEOUT_MS = 15_000;
const URL_PROBE_TIMEOUT_MS = 5_000;
const CHILD_STOP_GRACE_MS = 5_000;

const EXIT_OK = 0;
const EXIT_BASELINE_MISMATCH = 1;
const EXIT_SETUP_ERROR = 2;

const USAGE = `Usage: node conformance/run.mjs [options]

Without --url, starts @modelcontextprotocol/server-everything (Streamable HTTP) on a free
loopback port and tests it. Exits 1 when a scenario fails that the baseline does not list, or
when a scenario that the baseline lists passes; exits 2 on a setup error.

Options:
  --url URL              test an already running server at URL instead
  --header 'Name: value' add an HTTP header to every request sent to the server (repeatable);
                         requests then go through a loopback forwarder inside this script
  --baseline PATH        expected-failures YAML file (default: conformance/baseline.yml)
  --suite NAME           conformance suite: active (default), all or pending
  --scenario NAME        run only this scenario
  --timeout SECONDS      stop the conformance CLI after this many seconds
                         (default: ${DEFAULT_TIMEOUT_SECONDS})
  --keep                 keep the temporary results directory (kept anyway on a non-zero exit)
  --verbose              print the conformance CLI output as it runs
  -h, --help             print this help`;

class SetupError extends Error {}

/** Parses the command line into run options. Throws SetupError on invalid input. */
function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        header: { type: 'string', multiple: true, default: [] },
        baseline: { type: 'string', default: DEFAULT_BASELINE_PATH },
        suite: { type: 'string', default: 'active' },
        scenario: { type: 'string' },
        timeout: { type: 'string', default: String(DEFAULT_TIMEOUT_SECONDS) },
        keep: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new SetupError(`${error.message}\n\n${USAGE}`);
  }
  const values = parsed.values;

  if (values.url !== undefined) {
    let url;
    try {
      url = new URL(values.url);
    } catch {
      throw new SetupError(`invalid --url ${JSON.stringify(values.url)}: expected an absolute URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new SetupError(`invalid --url ${values.url}: only http: and https: URLs are supported`);
    }
  }
  if (!SUITES.includes(values.suite)) {
    throw new SetupError(`invalid --suite ${values.suite}: expected one of ${SUITES.join(', ')}`);
  }
  const timeoutSeconds = Number(values.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new SetupError(
      `invalid --timeout ${values.timeout}: expected a positive number of seconds`,
    );
  }

  return {
    url: values.url,
    headers: values.header.map(parseHeaderOption),
    baselinePath: values.baseline,
    suite: values.suite,
    scenario: values.scenario,
    timeoutMs: timeoutSeconds * 1000,
    keep: values.keep,
    verbose: values.verbose,
    help: values.help,
  };
}

/** Splits a `Name: value` option into a [name, value] pair. */
function parseHeaderOption(option) {
  const separator = option.indexOf(':');
  const name = separator === -1 ? '' : option.slice(0, separator).trim();
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new SetupError(
      `invalid --header option: expected 'Name: value' with a valid header name`,
    );
  }
  return [name, option.slice(separator + 1).trim()];
}

/**
 * Reads an expected-failures file in the CLI's format (a `server:` list of scenario names) and
 * returns the names as a Set.
 */
async function loadBaseline(path) {
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new SetupError(`cannot read baseline ${path}: ${error.message}`);
  }
  const document = parseYaml(text);
  if (document === null || document === undefined) return new Set();
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new SetupError(`invalid baseline ${path}: expected a mapping with a 'server' key`);
  }
  if (document.server === undefined || document.server === null) return new Set();
  if (!Array.isArray(document.server)) {
    throw new SetupError(`invalid baseline ${path}: 'server' must be a list of scenario names`);
  }
  return new Set(document.server.map(String));
}

/** Returns a TCP port that is free on 127.0.0.1 at the time of the call. */
function findFreeLoopbackPort() {
  return new Promise((resolve, reject) => {
    const probe = http.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends one GET to url and resolves with the response status. Rejects on a network error. */
function probeHttp(url) {
  return new Promise((resolve, reject) => {
    const transport = new URL(url).protocol === 'https:' ? https : http;
    const request = transport.get(url, { timeout: 1_000 }, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on('timeout', () =>
      request.destroy(new Error('timed out after 1 s without a response')),
    );
    request.on('error', reject);
  });
}

/**
 * Polls url until the server responds with any HTTP status. Stops early when isDead() returns a
 * reason, for example because the server process exited.
 */
async function waitForHttp(url, timeoutMs, isDead = () => undefined) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    const deathReason = isDead();
    if (deathReason) throw new SetupError(deathReason);
    try {
      return await probeHttp(url);
    } catch (error) {
      lastError = error;
      await sleep(100);
    }
  }
  throw new SetupError(`${url} did not respond within ${timeoutMs} ms: ${lastError?.message}`);
}

/** Sends SIGTERM to a child process, then SIGKILL if it has not exited after a grace period. */
async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts server-everything's Streamable HTTP transport with PORT set to a free port and waits until
 * it responds on 127.0.0.1. server-everything 2026.8.31 reads only PORT (default 3001) and calls
 * app.listen(PORT) with no host, so it listens on all interfaces. This script connects to it only
 * through 127.0.0.1.
 */
export async function startServerEverything(logPath) {
  const packageJsonPath = requireFromHere.resolve(
    '@modelcontextprotocol/server-everything/package.json',
  );
  const entry = join(dirname(packageJsonPath), 'dist', 'index.js');
  const port = await findFreeLoopbackPort();
  const log = createWriteStream(logPath);
  const child = spawn(process.execPath, [entry, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);

  const url = `http://127.0.0.1:${port}/mcp`;
  const describeExit = () =>
    child.exitCode !== null || child.signalCode !== null
      ? `server-everything exited (code ${child.exitCode}, signal ${child.signalCode}) before ` +
        `answering; see ${logPath}`
      : undefined;
  try {
    await waitForHttp(url, SERVER_START_TIMEOUT_MS, describeExit);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { url, stop: () => stopChild(child) };
}

// Hop-by-hop headers describe a single connection, so the forwarder does not copy them.
const HOP_BY_HOP_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function copyEndToEndHeaders(headers) {
  const copy = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP_HEADERS.has(name)) copy[name] = value;
  }
  return copy;
}

/**
 * Starts an HTTP forwarder on 127.0.0.1 that sends every request to targetUrl's origin with
 * extraHeaders added (replacing headers of the same name), and streams bodies both ways unchanged,
 * including SSE responses. It exists because the conformance CLI cannot send custom headers.
 *
 * A Host or Origin header naming the forwarder itself is rewritten to the target, so the target
 * receives the same values as from a direct client. Any other Host or Origin passes through
 * unchanged, which keeps the dns-rebinding-protection scenario meaningful.
 */
export async function startHeaderForwarder(targetUrl, extraHeaders) {
  const target = new URL(targetUrl);
  const transport = target.protocol === 'https:' ? https : http;
  // URL.hostname keeps the brackets of an IPv6 literal, which http.request does not accept.
  const targetHostname = target.hostname.replace(/^\[(.*)\]$/, '$1');
  let forwarderHost;

  const server = http.createServer((request, response) => {
    let clientClosed = false;
    const headers = copyEndToEndHeaders(request.headers);
    if (headers.host === forwarderHost) headers.host = target.host;
    if (headers.origin === `http://${forwarderHost}`) headers.origin = target.origin;
    for (const [name, value] of extraHeaders) headers[name.toLowerCase()] = value;

    const upstreamRequest = transport.request({
      hostname: targetHostname,
      port: target.port,
      method: request.method,
      path: request.url,
      headers,
    });
    upstreamRequest.on('response', (upstreamResponse) => {
      response.writeHead(
        upstreamResponse.statusCode,
        upstreamResponse.statusMessage,
        copyEndToEndHeaders(upstreamResponse.headers),
      );
      // Send the status line now, because an SSE stream may stay silent for long after its headers.
      response.flushHeaders();
      pipeline(upstreamResponse, response, (error) => {
        if (error && error.code !== 'ERR_STREAM_PREMATURE_CLOSE') {
          console.error(
            `forwarder: response for ${request.method} ${request.url} failed: ${error.message}`,
          );
        }
      });
    });
    upstreamRequest.on('error', (error) => {
      // Destroying the upstream request after the client went away is not an error worth logging.
      if (clientClosed) return;
      console.error(
        `forwarder: ${request.method} ${target.origin}${request.url} failed: ${error.message}`,
      );
      if (response.headersSent) {
        response.destroy(error);
      } else {
        response.writeHead(502, { 'content-type': 'text/plain' });
        response.end(`forwarder: request to ${target.origin} failed: ${error.message}\n`);
      }
    });
    pipeline(request, upstreamRequest, () => {});
    // When the client disconnects early, for example from an SSE stream, close the upstream too.
    response.on('close', () => {
      if (response.writableFinished) return;
      clientClosed = true;
      upstreamRequest.destroy();
    });
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  forwarderHost = `127.0.0.1:${server.address().port}`;
  return {
    url: `http://${forwarderHost}${target.pathname}${target.search}`,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Runs `conformance server` under Node with the globSync shim and saves its output to logPath.
 * Resolves when the CLI exits or, after timeoutMs, once it has been stopped.
 */
async function runConformanceCli({
  url,
  suite,
  scenario,
  resultsDir,
  logPath,
  timeoutMs,
  verbose,
}) {
  const packageJsonPath = requireFromHere.resolve('@modelcontextprotocol/conformance/package.json');
  const packageJson = JSON.parse(await readFile(packageJsonPath, 'utf8'));
  const cliPath = join(dirname(packageJsonPath), packageJson.bin.conformance);

  const args = ['--import', pathToFileURL(SHIM_PATH).href, cliPath, 'server', '--url', url];
  args.push(...(scenario ? ['--scenario', scenario] : ['--suite', suite]));
  args.push('--output-dir', resultsDir);

  const log = createWriteStream(logPath);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    log.write(chunk);
    if (verbose) process.stdout.write(chunk);
  });
  child.stderr.on('data', (chunk) => {
    log.write(chunk);
    if (verbose) process.stderr.write(chunk);
  });

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stopChild(child);
  }, timeoutMs);
  const [exitCode, signal] = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signalName) => resolve([code, signalName]));
  });
  clearTimeout(timer);
  await new Promise((resolve) => log.end(resolve));
  return { exitCode, signal, timedOut, stdout };
}

// The CLI names each result directory `server-<scenario>-<ISO timestamp with : and . as ->`.
const RESULT_DIR_PATTERN = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** Reads every checks.json under resultsDir into a Map from scenario name to its checks. */
async function readResults(resultsDir) {
  const results = new Map();
  let entries = [];
  try {
    entries = await readdir(resultsDir);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  for (const entry of entries) {
    const match = RESULT_DIR_PATTERN.exec(entry);
    if (!match) continue;
    const checks = JSON.parse(await readFile(join(resultsDir, entry, 'checks.json'), 'utf8'));
    results.set(match[1], checks);
  }
  return results;
}

/** Lists the scenarios the CLI started, in order, from the line it prints before each one. */
function startedScenarios(cliStdout) {
  const lines = cliStdout.matchAll(/^Running client scenario '(.+)' against server: /gm);
  return [...lines].map((match) => match[1]);
}

/** Returns text unchanged if it has at most 2 * edge lines, else its first and last edge lines. */
function abridgeLines(text, edge) {
  const lines = text.trimEnd().split('\n');
  if (lines.length <= 2 * edge) return lines.join('\n');
  return [...lines.slice(0, edge), '...', ...lines.slice(-edge)].join('\n');
}

/**
 * Classifies one scenario as pass, fail (a FAILURE check), warn (WARNING checks only) or missing
 * (no checks.json, because the scenario threw or the run stopped). Like the CLI's baseline check,
 * only pass counts as passing.
 */
function summarizeScenario(checks) {
  if (!checks) return { result: 'missing', passed: 0, failed: 0, warnings: 0 };
  const count = (status) => checks.filter((check) => check.status === status).length;
  const summary = {
    passed: count('SUCCESS'),
    failed: count('FAILURE'),
    warnings: count('WARNING'),
  };
  let result = 'pass';
  if (summary.failed > 0) result = 'fail';
  else if (summary.warnings > 0) result = 'warn';
  return { result, ...summary };
}

/** Prints the per-scenario table and returns the scenarios that disagree with the baseline. */
function reportResults(scenarios, results, baseline) {
  const unexpected = [];
  const stale = [];
  const width = Math.max(8, ...scenarios.map((name) => name.length));
  console.log(`\n${'scenario'.padEnd(width)}  result   pass/fail/warn  baseline`);
  for (const name of scenarios) {
    const summary = summarizeScenario(results.get(name));
    const failing = summary.result !== 'pass';
    let baselineNote = '';
    if (failing && baseline.has(name)) baselineNote = 'expected failure';
    else if (failing) baselineNote = 'UNEXPECTED FAILURE';
    else if (baseline.has(name)) baselineNote = 'STALE: passes but is listed';
    if (failing && !baseline.has(name)) unexpected.push(name);
    if (!failing && baseline.has(name)) stale.push(name);
    const counts = `${summary.passed}/${summary.failed}/${summary.warnings}`;
    console.log(
      `${name.padEnd(width)}  ${summary.result.padEnd(7)}  ${counts.padEnd(14)}  ${baselineNote}`,
    );
  }
  return { unexpected, stale };
}

/** Prints the error message of each FAILURE or WARNING check of the named scenarios. */
function printFailureDetails(names, results) {
  for (const name of names) {
    const checks = results.get(name);
    if (!checks) {
      console.log(
        `\n${name}: no checks.json (the scenario threw or the run stopped; see the CLI log)`,
      );
      continue;
    }
    for (const check of checks) {
      if (check.status !== 'FAILURE' && check.status !== 'WARNING') continue;
      console.log(
        `\n${name}: ${check.status} ${check.id}: ${check.errorMessage ?? check.description}`,
      );
    }
  }
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    console.log(USAGE);
    return EXIT_OK;
  }
  const baseline = await loadBaseline(options.baselinePath);
  const workDir = await mkdtemp(join(tmpdir(), 'deputy-conformance-'));
  const cleanups = [];
  const cleanUp = async () => {
    while (cleanups.length > 0) await cleanups.pop()();
  };
  const onSignal = async (signal) => {
    console.error(`\nreceived ${signal}; stopping child processes`);
    await cleanUp();
    console.error(`results and logs kept in ${workDir}`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let exitCode = EXIT_SETUP_ERROR;
  const startTime = Date.now();
  try {
    let targetUrl = options.url;
    if (targetUrl) {
      await waitForHttp(targetUrl, URL_PROBE_TIMEOUT_MS);
    } else {
      const server = await startServerEverything(join(workDir, 'server-everything.log'));
      cleanups.push(server.stop);
      targetUrl = server.url;
      console.log(`started server-everything at ${targetUrl}`);
    }

    let cliUrl = targetUrl;
    if (options.headers.length > 0) {
      const forwarder = await startHeaderForwarder(targetUrl, options.headers);
      cleanups.push(forwarder.stop);
      cliUrl = forwarder.url;
      const names = options.headers.map(([name]) => name).join(', ');
      console.log(`forwarding ${cliUrl} to ${targetUrl}, adding headers: ${names}`);
    }

    const runName = options.scenario ? `scenario ${options.scenario}` : `${options.suite} suite`;
    console.log(`running the conformance ${runName} against ${cliUrl}`);
    const cliLogPath = join(workDir, 'conformance-cli.log');
    const run = await runConformanceCli({
      url: cliUrl,
      suite: options.suite,
      scenario: options.scenario,
      resultsDir: join(workDir, 'results'),
      logPath: cliLogPath,
      timeoutMs: options.timeoutMs,
      verbose: options.verbose,
    });

    const results = await readResults(join(workDir, 'results'));
    const scenarios = startedScenarios(run.stdout);
    if (scenarios.length === 0) {
      const reason = run.timedOut
        ? `timed out after ${options.timeoutMs / 1000} s`
        : `exited with code ${run.exitCode}`;
      const cliLog = await readFile(cliLogPath, 'utf8');
      throw new SetupError(
        `the conformance CLI ${reason} before starting any scenario; ${cliLogPath} begins and ` +
          `ends with:\n${abridgeLines(cliLog, 6)}`,
      );
    }
    const { unexpected, stale } = reportResults(scenarios, results, baseline);
    printFailureDetails(unexpected, results);

    const plannedMatch = /^Running \w+ suite \((\d+) scenarios\)/m.exec(run.stdout);
    const notStarted = plannedMatch ? Number(plannedMatch[1]) - scenarios.length : 0;
    const failingCount = scenarios.filter(
      (name) => summarizeScenario(results.get(name)).result !== 'pass',
    ).length;
    const seconds = ((Date.now() - startTime) / 1000).toFixed(1);
    console.log(
      `\n${scenarios.length} scenarios in ${seconds} s: ${scenarios.length - failingCount} passing, ` +
        `${failingCount} failing; ${unexpected.length} unexpected failures, ` +
        `${stale.length} stale baseline entries`,
    );
    if (run.timedOut) {
      console.log(
        `the conformance CLI timed out after ${options.timeoutMs / 1000} s and was stopped`,
      );
    }
    if (notStarted > 0) console.log(`${notStarted} scenarios of the suite never started`);
    if (stale.length > 0) {
      console.log(`remove the stale entries from ${options.baselinePath}: ${stale.join(', ')}`);
    }

    const mismatch = unexpected.length > 0 || stale.length > 0 || notStarted > 0 || run.timedOut;
    exitCode = mismatch ? EXIT_BASELINE_MISMATCH : EXIT_OK;
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    console.error(`error: ${error.message}`);
  } finally {
    await cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (exitCode === EXIT_OK && !options.keep) {
      await rm(workDir, { recursive: true, force: true });
    } else {
      console.log(`results and logs kept in ${workDir}`);
    }
  }
  return exitCode;
}

// Run only when executed as a script, so that a test can import startHeaderForwarder. Node resolves
// symbolic links in import.meta.url but not in process.argv[1].
const isScript =
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isScript) {
  try {
    process.exitCode = await main();
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    console.error(`error: ${error.message}`);
    process.exitCode = EXIT_SETUP_ERROR;
  }
}
