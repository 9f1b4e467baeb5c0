/**
 * The MCP load generator of the gateway benchmark, run as a forked child so it does not share
 * the gateway's event loop. Each job connects its clients, warms up, then reports what it
 * measured to the parent over IPC.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

export interface McpLoadJob {
  url: string;
  /** Authorization header value, or null for the upstream itself. */
  authorization: string | null;
  tool: string;
  /** Concurrent clients, each with its own session and one call in flight. */
  clients: number;
  warmupMs: number;
  durationMs: number;
  /** Record every call's latency, for percentiles. */
  latencies: boolean;
}

export interface McpLoadResult {
  calls: number;
  seconds: number;
  /** Call latencies in microseconds, sorted, when requested. */
  latenciesUs: number[];
  errors: number;
}

async function connect(job: McpLoadJob): Promise<Client> {
  const client = new Client({ name: 'deputy-bench', version: '1.0.0' });
  const headers: Record<string, string> = job.authorization
    ? { authorization: job.authorization }
    : {};
  await client.connect(
    new StreamableHTTPClientTransport(new URL(job.url), { requestInit: { headers } }),
  );
  return client;
}

async function run(job: McpLoadJob): Promise<McpLoadResult> {
  const clients = await Promise.all(Array.from({ length: job.clients }, () => connect(job)));
  const args = { message: 'hello from the gateway benchmark' };
  let measuring = false;
  let stop = false;
  let calls = 0;
  let errors = 0;
  const latencies: number[] = [];

  const loop = async (client: Client) => {
    while (!stop) {
      const started = performance.now();
      try {
        await client.callTool({ name: job.tool, arguments: args });
      } catch {
        errors++;
      }
      if (measuring) {
        calls++;
        if (job.latencies) latencies.push((performance.now() - started) * 1000);
      }
    }
  };

  const loops = clients.map(loop);
  await new Promise((resolve) => setTimeout(resolve, job.warmupMs));
  measuring = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, job.durationMs));
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  stop = true;
  await Promise.all(loops);
  await Promise.all(clients.map((client) => client.close()));
  return { calls, seconds, latenciesUs: latencies.sort((a, b) => a - b), errors };
}

process.on('message', (job: McpLoadJob) => {
  run(job).then(
    (result) => process.send!({ result }),
    (error: Error) => process.send!({ error: error.message }),
  );
});
