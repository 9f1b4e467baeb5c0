/**
 * HTTP load generator, run in a child process (`child_process.fork`) so the servers under test
 * keep the parent's event loop to themselves. It keeps one request in flight on each of many
 * keep-alive connections, with a minimal HTTP/1.1 client on raw sockets that parses only the
 * status and content-length, to keep the client's CPU use low. The benchmark page reports that
 * CPU use, so a run where the client was the bottleneck can be recognized.
 *
 * Protocol: the parent sends a LoadJob message; the child sends back a LoadReply.
 */
import { connect, type Socket } from 'node:net';

export interface LoadJob {
  readonly port: number;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** JSON request bodies, sent in turn. */
  readonly bodies: readonly string[];
  readonly connections: number;
  /** Milliseconds of load before counting starts. */
  readonly warmupMs: number;
  /** Milliseconds during which completed responses are counted. */
  readonly durationMs: number;
}

export interface LoadResult {
  /** Responses completed during the counted window. */
  readonly responses: number;
  readonly seconds: number;
  /** Responses per HTTP status code during the window. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Body of the first counted response, so the parent can check its content. */
  readonly sampleBody: string | null;
  /** Milliseconds from writing a request to reading its whole response. */
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  /** CPU seconds this process used during the window. */
  readonly cpuSeconds: number;
}

export type LoadReply = { ok: true; result: LoadResult } | { ok: false; message: string };

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
/** Milliseconds without any response after which the run fails. */
const STALL_TIMEOUT_MS = 10_000;

/** A complete response at the start of a buffer. */
interface ParsedResponse {
  status: number;
  bodyStart: number;
  end: number;
}

/** Parses the response at the start of `buffer`, or returns null when it is incomplete. */
function parseResponse(buffer: Buffer): ParsedResponse | null {
  const headerEnd = buffer.indexOf(HEADER_END);
  if (headerEnd === -1) return null;

  const head = buffer.toString('latin1', 0, headerEnd);
  const length = CONTENT_LENGTH.exec(head)?.[1];
  if (length === undefined) {
    throw new Error(`response without content-length (chunked is not supported): ${head}`);
  }
  const bodyStart = headerEnd + HEADER_END.length;
  const end = bodyStart + Number(length);
  if (buffer.length < end) return null;
  return { status: Number(head.slice(9, 12)), bodyStart, end };
}

function encodeRequests(job: LoadJob): Buffer[] {
  const headers = Object.entries(job.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return job.bodies.map((body) =>
    Buffer.from(
      `POST ${job.path} HTTP/1.1\r\nhost: 127.0.0.1:${job.port}\r\n${headers}` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n` +
        body,
    ),
  );
}

/** Runs one job: opens the connections, counts responses in the window, then closes them. */
export function runLoad(job: LoadJob): Promise<LoadResult> {
  const requests = encodeRequests(job);
  const start = performance.now();
  const countFrom = start + job.warmupMs;
  const countUntil = countFrom + job.durationMs;

  const statuses: Record<string, number> = {};
  const latencies: number[] = [];
  let sampleBody: string | null = null;
  // CPU use is read at the first response inside the window and the first one after it.
  let cpuAtStart: NodeJS.CpuUsage | null = null;
  let cpuSeconds: number | null = null;
  let lastResponse = start;

  return new Promise((resolve, reject) => {
    const sockets: Socket[] = [];
    let open = job.connections;
    let failed = false;

    const fail = (error: Error) => {
      if (failed) return;
      failed = true;
      clearInterval(watchdog);
      sockets.forEach((socket) => socket.destroy());
      reject(error);
    };
    const finishOne = () => {
      open -= 1;
      if (open > 0 || failed) return;
      clearInterval(watchdog);
      latencies.sort((left, right) => left - right);
      resolve({
        responses: latencies.length,
        seconds: job.durationMs / 1000,
        statuses,
        sampleBody,
        latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) },
        cpuSeconds: cpuSeconds ?? 0,
      });
    };
    const watchdog = setInterval(() => {
      if (performance.now() - lastResponse > STALL_TIMEOUT_MS) {
        fail(new Error(`no response for ${STALL_TIMEOUT_MS} ms from port ${job.port}`));
      }
    }, 1000);

    for (let index = 0; index < job.connections; index++) {
      const socket = connect({ host: '127.0.0.1', port: job.port, noDelay: true });
      sockets.push(socket);
      let next = index;
      let sentAt = 0;
      let pending: Buffer | null = null;
      let done = false;

      const send = () => {
        sentAt = performance.now();
        socket.write(requests[next % requests.length] as Buffer);
        next += 1;
      };

      socket.on('connect', send);
      socket.on('error', (error) => fail(error));
      socket.on('close', () => {
        if (!done) fail(new Error(`the server on port ${job.port} closed a connection`));
      });
      socket.on('data', (chunk: Buffer) => {
        pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
        let response: ParsedResponse | null;
        try {
          response = parseResponse(pending);
        } catch (error) {
          fail(error as Error);
          return;
        }
        if (response === null) return;
        if (response.end !== pending.length) {
          fail(new Error('the server sent more than one response for one request'));
          return;
        }

        const now = performance.now();
        lastResponse = now;
        if (now >= countFrom && now < countUntil) {
          cpuAtStart ??= process.cpuUsage();
          statuses[response.status] = (statuses[response.status] ?? 0) + 1;
          latencies.push(now - sentAt);
          sampleBody ??= pending.toString('utf8', response.bodyStart, response.end);
        }
        pending = null;

        if (now < countUntil) {
          send();
          return;
        }
        if (cpuSeconds === null && cpuAtStart !== null) {
          const used = process.cpuUsage(cpuAtStart);
          cpuSeconds = (used.user + used.system) / 1e6;
        }
        done = true;
        socket.end();
        finishOne();
      });
    }
  });
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

// Started by fork(): serve jobs until the parent disconnects.
if (process.send !== undefined) {
  process.on('message', (job: LoadJob) => {
    runLoad(job).then(
      (result) => process.send?.({ ok: true, result } satisfies LoadReply),
      (error: Error) => process.send?.({ ok: false, message: error.message } satisfies LoadReply),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
