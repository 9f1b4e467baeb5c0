/**
 * Connections to upstream MCP servers: stdio processes Deputy starts, or Streamable HTTP URLs.
 * Each upstream gets the agent's own credential for that system from Deputy, never the
 * caller's token.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import {
  Client,
  type Prompt,
  StreamableHTTPClientTransport,
  type Tool,
} from '@modelcontextprotocol/client';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { Logger } from 'pino';
import { type Agent, fetch as undiciFetch } from 'undici';

import { resolveCredential } from '../connections/credentials.js';
import type { Connection } from '../model/policy.js';
import type { SecretStore } from '../storage/secrets.js';
import { credentialHeaders, secretForms } from './credential-injection.js';
import { checkUpstreamUrl, createCheckedAgent } from './egress/destination.js';
import type { HttpSession } from './http-upstream.js';
import { redactText } from './redact.js';

/** A connected upstream MCP server and the tools it currently lists. */
export interface Upstream {
  readonly client: Client;
  tools: Tool[];
  /** The prompts it lists, when it has the prompts capability. */
  readonly prompts: Prompt[];
  /** The injected secret, kept to tell when it changes. */
  readonly secret: string | null;
  /** The forms of the secret to scrub from what reaches the agent, see `secretForms`. */
  readonly secretForms: readonly string[];
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
  /** The connection as the current policy has it; upstreams of other connections are stopped. */
  currentConnection?: (workspace: string, connection: string) => Connection | undefined;
  /** Milliseconds an upstream may stay unused before it is stopped. @default 600000 */
  idleMs?: number;
  /** Maximum running compartments per connection; the least recently used is stopped. @default 64 */
  maxCompartments?: number;
}

const fingerprints = new WeakMap<Connection, string>();

/**
 * Returns the settings of a connection as one string, to tell when they change. A loaded policy's
 * connection objects do not change, so the string is computed once per object.
 */
export function fingerprintOf(connection: Connection): string {
  let fingerprint = fingerprints.get(connection);
  if (fingerprint === undefined) {
    fingerprint = JSON.stringify(connection);
    fingerprints.set(connection, fingerprint);
  }
  return fingerprint;
}

/** Tests whether a connection is an MCP server the gateway can reach. */
export function isMcpConnection(connection: Connection): boolean {
  return (
    connection.kind === 'mcp' && (connection.command !== undefined || connection.url !== undefined)
  );
}

/** A started or starting upstream and what it was started from. */
interface PoolEntry {
  readonly started: Promise<Upstream>;
  readonly fingerprint: string;
  readonly workspace: string;
  readonly connection: string;
  /** The compartment key, or `''` for an upstream shared by every compartment. */
  readonly compartment: string;
  upstream: Upstream | null;
  lastUsed: number;
}

/**
 * Starts upstreams on first use and keeps them while they are used. A connection whose
 * settings or stored secret change gets a new upstream. One that fails or exits is started
 * again on the next call, and one unused for `idleMs`, or whose connection is removed, stops.
 */
export class UpstreamPool {
  readonly #options: UpstreamPoolOptions;
  readonly #entries = new Map<string, PoolEntry>();
  readonly #knownTools = new Map<string, { fingerprint: string; tools: Tool[] }>();
  readonly #sweep: NodeJS.Timeout;

  constructor(options: UpstreamPoolOptions) {
    this.#options = options;
    this.#sweep = setInterval(() => void this.sweep(), 60_000);
    this.#sweep.unref();
  }

  /**
   * Returns the upstream of `connection` for the memory compartment `compartment` (used only
   * when the connection has `compartments: true`), starting it if needed.
   */
  async get(workspace: string, connection: Connection, compartment: string): Promise<Upstream> {
    const perCompartment = connection.compartments ? compartment : '';
    const key = `${workspace}\u0000${connection.id}\u0000${perCompartment}`;
    const fingerprint = fingerprintOf(connection);
    const existing = this.#entries.get(key);
    if (existing !== undefined && existing.fingerprint === fingerprint) {
      existing.lastUsed = Date.now();
      return await existing.started;
    }
    if (existing !== undefined) this.#stop(key, existing);
    if (perCompartment !== '') this.#makeRoom(workspace, connection.id);

    const started = this.#start(workspace, connection, perCompartment);
    const entry: PoolEntry = {
      started,
      fingerprint,
      workspace,
      connection: connection.id,
      compartment: perCompartment,
      upstream: null,
      lastUsed: Date.now(),
    };
    this.#entries.set(key, entry);
    started.then(
      (upstream) => {
        entry.upstream = upstream;
        this.#knownTools.set(`${workspace}\u0000${connection.id}`, {
          fingerprint,
          tools: upstream.tools,
        });
        const previous = upstream.client.onclose;
        upstream.client.onclose = () => {
          previous?.();
          if (this.#entries.get(key) === entry) this.#entries.delete(key);
        };
      },
      () => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
      },
    );
    return await started;
  }

  /**
   * Returns the tools an upstream of the connection listed, in any compartment, or null when none has
   * run with its current settings. Compartments of one connection run the same server, so they
   * list the same tools; the list is kept after the upstream stops.
   */
  knownTools(workspace: string, connection: Connection): Tool[] | null {
    const known = this.#knownTools.get(`${workspace}\u0000${connection.id}`);
    return known?.fingerprint === fingerprintOf(connection) ? known.tools : null;
  }

  /** Stops the least recently used compartment of a connection that has too many. */
  #makeRoom(workspace: string, connection: string): void {
    const max = this.#options.maxCompartments ?? 64;
    const compartments = [...this.#entries].filter(
      ([, entry]) =>
        entry.workspace === workspace &&
        entry.connection === connection &&
        entry.compartment !== '',
    );
    if (compartments.length < max) return;
    compartments.sort(([, a], [, b]) => a.lastUsed - b.lastUsed);
    const [key, oldest] = compartments[0]!;
    this.#stop(key, oldest);
  }

  /**
   * Stops upstreams unused for `idleMs`, those whose connection is removed or changed, and
   * those whose credential changed since they started.
   */
  async sweep(now = Date.now()): Promise<void> {
    const idleMs = this.#options.idleMs ?? 600_000;
    for (const [key, entry] of [...this.#entries]) {
      const current = this.#options.currentConnection?.(entry.workspace, entry.connection);
      if (
        now - entry.lastUsed > idleMs ||
        (this.#options.currentConnection && current === undefined) ||
        (current !== undefined && fingerprintOf(current) !== entry.fingerprint)
      ) {
        this.#stop(key, entry);
        continue;
      }
      if (entry.upstream && current !== undefined && (await this.#secretChanged(entry, current))) {
        this.#stop(key, entry);
      }
    }
  }

  async #secretChanged(entry: PoolEntry, connection: Connection): Promise<boolean> {
    const { secrets, env } = this.#options;
    try {
      const secret = await resolveCredential(entry.workspace, connection, secrets, env);
      return secret !== entry.upstream!.secret;
    } catch {
      return true;
    }
  }

  #stop(key: string, entry: PoolEntry): void {
    if (this.#entries.get(key) === entry) this.#entries.delete(key);
    void closeQuietly(entry.started);
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
    const prompts = client.getServerCapabilities()?.prompts
      ? (await client.listPrompts(undefined, { timeout: connection.timeout_ms })).prompts
      : [];
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
      prompts,
      secret,
      secretForms: secretForms(connection, secret),
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
    const [command, ...rawArgs] = connection.command!;
    let directory = '';
    if (compartment !== '') {
      directory = this.compartmentDirectory(workspace, connection.id, compartment);
      await mkdir(directory, { recursive: true, mode: 0o700 });
    }
    const args = rawArgs.map((arg) => arg.replaceAll('{compartment}', directory));
    const env: Record<string, string> = { ...getDefaultEnvironment() };
    for (const [name, value] of Object.entries(connection.env)) {
      env[name] = value.replaceAll('{compartment}', directory);
    }
    const credential = connection.credential;
    if (credential?.scheme === 'env' && secret !== null) env[credential.name!] = secret;

    const transport = new StdioClientTransport({ command: command!, args, env, stderr: 'pipe' });
    const logger = this.#options.logger;
    // Whole lines are logged, with the credential redacted before anything is cut.
    const secrets = secret === null ? [] : [secret];
    let partial = '';
    transport.stderr?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!.slice(-65_536);
      for (const line of lines) {
        const text = redactText(line, secrets).slice(0, 2048);
        logger.debug({ connection: connection.id, stderr: text }, 'upstream stderr');
      }
    });
    return transport;
  }

  /**
   * Directory of a compartment of a connection: a hash, so identities never become file names,
   * and two connections never share a compartment's files.
   */
  compartmentDirectory(workspace: string, connection: string, compartment: string): string {
    const digest = createHash('sha256')
      .update(`${workspace}\u0000${connection}\u0000${compartment}`)
      .digest('hex');
    return join(this.#options.compartmentDir, digest.slice(0, 32));
  }

  async #replaceTools(
    workspace: string,
    connection: Connection,
    compartment: string,
    tools: Tool[],
  ) {
    const key = `${workspace}\u0000${connection.id}\u0000${compartment}`;
    const upstream = await this.#entries.get(key)?.started.catch(() => undefined);
    if (upstream) upstream.tools = tools;
    const fingerprint = fingerprintOf(connection);
    this.#knownTools.set(`${workspace}\u0000${connection.id}`, { fingerprint, tools });
  }

  /** Number of started or starting upstreams. */
  get size(): number {
    return this.#entries.size;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((entry) => closeQuietly(entry.started)));
  }
}

/** Creates a first-in, first-out limit on calls in flight, or no limit when `max` is undefined. */
function concurrencyLimit(max: number | undefined): Upstream['limit'] {
  if (max === undefined) return (call) => call();
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (call) => {
    // A finishing call hands its slot to the next waiter, so no new call can take it between.
    if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await call();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}

/**
 * Creates the transport of a Streamable HTTP upstream. Its requests go through an agent that checks
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
