/**
 * Connections to upstream MCP servers: stdio processes Deputy starts, or Streamable HTTP URLs.
 * Each upstream gets the agent's own credential for that system from Deputy, never the
 * caller's token.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Client, StreamableHTTPClientTransport, type Tool } from '@modelcontextprotocol/client';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { Logger } from 'pino';
import { type Agent, fetch as undiciFetch } from 'undici';

import { resolveCredential } from '../connections/credentials.js';
import type { Connection } from '../model/policy.js';
import type { SecretStore } from '../storage/secrets.js';
import { credentialHeaders } from './credential-injection.js';
import { checkUpstreamUrl, createCheckedAgent } from './egress/destination.js';
import type { HttpSession } from './http-upstream.js';

/** A connected upstream MCP server and the tools it currently lists. */
export interface Upstream {
  readonly client: Client;
  tools: Tool[];
  /** The injected secret, kept only so upstream error text can be redacted before it is stored. */
  readonly secret: string | null;
  /** The session of a Streamable HTTP upstream, for direct forwarding; null for stdio. */
  readonly http: HttpSession | null;
  /** Runs `call` when the connection's `max_concurrent_calls` allows, in arrival order. */
  readonly limit: <T>(call: () => Promise<T>) => Promise<T>;
}

export interface UpstreamPoolOptions {
  secrets: SecretStore;
  logger: Logger;
  /** Parent directory of the per-compartment directories. */
  compartmentDir: string;
  /** Environment that `env:NAME` secret references read. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Whether a connection is an MCP server the gateway can reach. */
export function isMcpConnection(connection: Connection): boolean {
  return (
    connection.kind === 'mcp' && (connection.command !== undefined || connection.url !== undefined)
  );
}

/**
 * Starts upstreams on first use and keeps them. A connection whose settings change gets a new
 * upstream; one that fails or exits is started again on the next call.
 */
export class UpstreamPool {
  readonly #options: UpstreamPoolOptions;
  readonly #upstreams = new Map<string, Promise<Upstream>>();

  constructor(options: UpstreamPoolOptions) {
    this.#options = options;
  }

  /**
   * Returns the upstream of `connection` for the memory compartment `compartment` (used only
   * when the connection has `compartments: true`), starting it if needed.
   */
  async get(workspace: string, connection: Connection, compartment: string): Promise<Upstream> {
    const perCompartment = connection.compartments ? compartment : '';
    const key = `${workspace}\u0000${connection.id}\u0000${perCompartment}`;
    const fingerprint = JSON.stringify(connection);
    const entry = this.#upstreams.get(key);
    if (entry !== undefined && (entry as TaggedPromise).fingerprint === fingerprint) return entry;
    if (entry !== undefined) void closeQuietly(entry);

    const started = this.#start(workspace, connection, perCompartment) as TaggedPromise;
    started.fingerprint = fingerprint;
    this.#upstreams.set(key, started);
    started.then(
      (upstream) => {
        const previous = upstream.client.onclose;
        upstream.client.onclose = () => {
          previous?.();
          if (this.#upstreams.get(key) === started) this.#upstreams.delete(key);
        };
      },
      () => {
        if (this.#upstreams.get(key) === started) this.#upstreams.delete(key);
      },
    );
    return await started;
  }

  async #start(workspace: string, connection: Connection, compartment: string): Promise<Upstream> {
    const { logger, secrets } = this.#options;
    const secret = await resolveCredential(workspace, connection, secrets, this.#options.env);
    const client = new Client(
      { name: 'deputy-gateway', version: '0.1.0' },
      {
        listChanged: {
          tools: {
            onChanged: (error, tools) => {
              if (error)
                logger.warn({ err: error, connection: connection.id }, 'tool refresh failed');
              else if (tools) void this.#replaceTools(workspace, connection, compartment, tools);
            },
          },
        },
      },
    );

    const dispatcher = connection.command === undefined ? createCheckedAgent(connection) : null;
    const transport =
      dispatcher === null
        ? await this.#stdioTransport(workspace, connection, compartment, secret)
        : await httpTransport(connection, secret, dispatcher);
    if (dispatcher !== null) {
      const closed = client.onclose;
      client.onclose = () => {
        void dispatcher.close();
        closed?.();
      };
    }
    try {
      await client.connect(transport, { timeout: connection.timeout_ms });
    } catch (error) {
      await dispatcher?.close();
      throw error;
    }
    const http =
      transport instanceof StreamableHTTPClientTransport
        ? {
            url: new URL(connection.url!),
            sessionId: transport.sessionId,
            protocolVersion: client.getNegotiatedProtocolVersion(),
            headers: credentialHeaders(connection, secret),
            dispatcher: dispatcher!,
          }
        : null;
    const { tools } = await client.listTools(undefined, { timeout: connection.timeout_ms });
    logger.info(
      {
        workspace,
        connection: connection.id,
        compartment: compartment || null,
        tools: tools.length,
      },
      'upstream MCP server connected',
    );
    return {
      client,
      tools,
      secret,
      http,
      limit: concurrencyLimit(connection.max_concurrent_calls),
    };
  }

  async #stdioTransport(
    workspace: string,
    connection: Connection,
    compartment: string,
    secret: string | null,
  ): Promise<StdioClientTransport> {
    const [command, ...args] = connection.command!;
    let directory = '';
    if (compartment !== '') {
      directory = this.compartmentDirectory(workspace, compartment);
      await mkdir(directory, { recursive: true, mode: 0o700 });
    }
    const env: Record<string, string> = { ...getDefaultEnvironment() };
    for (const [name, value] of Object.entries(connection.env)) {
      env[name] = value.replaceAll('{compartment}', directory);
    }
    const credential = connection.credential;
    if (credential?.scheme === 'env' && secret !== null) env[credential.name!] = secret;

    const transport = new StdioClientTransport({ command: command!, args, env, stderr: 'pipe' });
    const logger = this.#options.logger;
    transport.stderr?.on('data', (chunk: Buffer) => {
      logger.debug(
        { connection: connection.id, stderr: chunk.toString('utf8', 0, 2048) },
        'upstream stderr',
      );
    });
    return transport;
  }

  /** Directory of a compartment: a hash, so identities never become file names. */
  compartmentDirectory(workspace: string, compartment: string): string {
    const digest = createHash('sha256').update(`${workspace}\u0000${compartment}`).digest('hex');
    return join(this.#options.compartmentDir, digest.slice(0, 32));
  }

  async #replaceTools(
    workspace: string,
    connection: Connection,
    compartment: string,
    tools: Tool[],
  ) {
    const key = `${workspace}\u0000${connection.id}\u0000${compartment}`;
    const upstream = await this.#upstreams.get(key)?.catch(() => undefined);
    if (upstream) upstream.tools = tools;
  }

  /** Stops every upstream whose connection is not in `keep` (`<workspace>/<connection>`). */
  async retain(keep: ReadonlySet<string>): Promise<void> {
    for (const [key, entry] of this.#upstreams) {
      const [workspace, connection] = key.split('\u0000');
      if (!keep.has(`${workspace}/${connection}`)) {
        this.#upstreams.delete(key);
        await closeQuietly(entry);
      }
    }
  }

  async close(): Promise<void> {
    const entries = [...this.#upstreams.values()];
    this.#upstreams.clear();
    await Promise.all(entries.map(closeQuietly));
  }
}

/** A first-in, first-out limit on calls in flight; no limit when `max` is undefined. */
function concurrencyLimit(max: number | undefined): Upstream['limit'] {
  if (max === undefined) return (call) => call();
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (call) => {
    if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await call();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

type TaggedPromise = Promise<Upstream> & { fingerprint?: string };

/**
 * The transport of a Streamable HTTP upstream. Its requests go through an agent that checks
 * every address it connects to, like the egress proxy, so the address check binds.
 */
async function httpTransport(
  connection: Connection,
  secret: string | null,
  dispatcher: Agent,
): Promise<StreamableHTTPClientTransport> {
  const url = await checkUpstreamUrl(connection);
  const headers = credentialHeaders(connection, secret);
  const checkedFetch = (input: string | URL, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>;
  return new StreamableHTTPClientTransport(url, {
    requestInit: { headers, redirect: 'manual' },
    redirectPolicy: 'same-origin',
    fetch: checkedFetch,
  });
}

async function closeQuietly(entry: Promise<Upstream>): Promise<void> {
  try {
    await (await entry).client.close();
  } catch {
    // A failed start has nothing to close.
  }
}
