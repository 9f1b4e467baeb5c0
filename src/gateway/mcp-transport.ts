/**
 * The HTTP side of the MCP endpoint. Requests of the 2026-07-28 revision are stateless and
 * served per request. Requests of the 2025-11-25 revision use sessions (`Mcp-Session-Id`):
 * a session belongs to the identity that opened it, and every request in it authenticates
 * again, so a session id alone never grants anything.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import {
  NodeStreamableHTTPServerTransport,
  toNodeHandler,
  toWebRequest,
} from '@modelcontextprotocol/node';
import {
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  ProtocolError,
  type Server,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server';
import type { Logger } from 'pino';

import type { GatewayCaller } from './bearer.js';

/** Builds the MCP server of one session or request; it reads the caller at call time. */
export type ServerFactory = (caller: () => GatewayCaller) => Server;

/** Serves a plain `tools/call` directly, without the SDK server; throws a ProtocolError. */
export type ToolCallHandler = (
  caller: GatewayCaller,
  name: string,
  args: Record<string, unknown>,
  requestId: string,
) => Promise<unknown>;

export interface McpTransportOptions {
  createServer: ServerFactory;
  /**
   * Serves `tools/call` requests of 2025-11-25 sessions that request no progress, with one
   * JSON body. Other requests go through the SDK server.
   */
  callTool?: ToolCallHandler;
  logger: Logger;
  /** Milliseconds a 2025-11-25 session may stay unused before it is closed. @default 1800000 */
  sessionIdleMs?: number;
  /** Maximum open 2025-11-25 sessions per workspace; more are rejected with 503. @default 10000 */
  maxSessions?: number;
  /** Maximum open sessions of one runtime client and agent; more are rejected with 503. @default 256 */
  maxSessionsPerClient?: number;
  /**
   * Maximum open sessions of one owner (the same identity, scope, invoker and thread); a new
   * one closes the owner's least recently used. @default 16
   */
  maxSessionsPerOwner?: number;
  /** Largest request body, in bytes. @default 4194304 */
  maxBodyBytes?: number;
}

interface Session {
  readonly owner: string;
  /** The runtime client and agent, which share a quota of sessions. */
  readonly client: string;
  readonly transport: NodeStreamableHTTPServerTransport;
  caller: GatewayCaller;
  lastUsed: number;
  /** Requests served, the initialize request included. */
  requests: number;
}

/** Milliseconds a session that only initialized may stay unused. */
const UNUSED_SESSION_MS = 120_000;

/** Milliseconds a session whose last token is no longer active may stay unused. */
const INACTIVE_SESSION_MS = 60_000;

export class McpTransport {
  readonly #options: McpTransportOptions;
  readonly #sessions = new Map<string, Session>();
  readonly #modern: ReturnType<typeof toNodeHandler>;
  readonly #sweep: NodeJS.Timeout;

  constructor(options: McpTransportOptions) {
    this.#options = options;
    const handler = createMcpHandler(
      (context) => {
        const caller = context.authInfo?.extra?.caller as GatewayCaller;
        return options.createServer(() => caller);
      },
      {
        legacy: 'reject',
        onerror: (error) => options.logger.debug({ err: error }, 'MCP request rejected'),
      },
    );
    this.#modern = toNodeHandler(handler);
    const idle = options.sessionIdleMs ?? 1_800_000;
    this.#sweep = setInterval(() => this.#closeIdle(idle), Math.min(idle, 15_000));
    this.#sweep.unref();
  }

  /** Number of open 2025-11-25 sessions. */
  get sessions(): number {
    return this.#sessions.size;
  }

  async handle(request: IncomingMessage, response: ServerResponse, caller: GatewayCaller) {
    const body =
      request.method === 'POST' ? await readJson(request, this.#options.maxBodyBytes) : undefined;
    if (body instanceof BodyError)
      return writeRpcError(response, body.status, body.code, body.message);

    // Only 2025-11-25 requests carry a session id, so they skip the full classification.
    const legacy =
      typeof request.headers['mcp-session-id'] === 'string' ||
      (await isLegacyRequest(await toWebRequest(request, body), body));
    if (!legacy) {
      (request as IncomingMessage & { auth?: unknown }).auth = authInfo(caller);
      await this.#modern(request, response, body);
      return;
    }
    await this.#handleLegacy(request, response, caller, body);
  }

  async #handleLegacy(
    request: IncomingMessage,
    response: ServerResponse,
    caller: GatewayCaller,
    body: unknown,
  ): Promise<void> {
    const id = request.headers['mcp-session-id'];
    if (typeof id === 'string') {
      const session = this.#sessions.get(id);
      // A session of another identity is reported as unknown, so ids cannot be probed.
      if (!session || session.owner !== ownerOf(caller)) {
        return writeRpcError(response, 404, -32001, 'Session not found');
      }
      session.caller = caller;
      session.lastUsed = Date.now();
      session.requests++;
      const call = this.#options.callTool;
      if (call !== undefined && isPlainToolCall(body) && acceptsPlainJson(request)) {
        const handle = (name: string, args: Record<string, unknown>) =>
          call(caller, name, args, randomUUID());
        await answerToolCall(response, body, handle, this.#options.logger);
        return;
      }
      await session.transport.handleRequest(request, response, body);
      return;
    }

    if (request.method !== 'POST' || !isInitializeRequest(body)) {
      return writeRpcError(response, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    }
    // The owner's own oldest session makes room first, so it never counts against the others.
    this.#makeRoom(ownerOf(caller));
    const refusal = this.#quotaRefusal(caller);
    if (refusal !== null) return writeRpcError(response, 503, -32000, refusal);
    await this.#open(request, response, caller, body);
  }

  async #open(
    request: IncomingMessage,
    response: ServerResponse,
    caller: GatewayCaller,
    body: unknown,
  ) {
    const sessions = this.#sessions;
    let session: Session | undefined;
    const transport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        if (session) sessions.set(id, session);
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
      },
    });
    session = {
      owner: ownerOf(caller),
      client: clientOf(caller),
      transport,
      caller,
      lastUsed: Date.now(),
      requests: 1,
    };
    const current = session;
    transport.onclose = () => {
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
    };
    const server = this.#options.createServer(() => current.caller);
    await server.connect(transport);
    await transport.handleRequest(request, response, body);
  }

  /**
   * Returns why a new session of `caller` is refused, or null: a runtime client and agent, and
   * a workspace, each have a maximum. Sessions of others are never closed to make room.
   */
  #quotaRefusal(caller: GatewayCaller): string | null {
    const client = clientOf(caller);
    let ofClient = 0;
    let ofWorkspace = 0;
    for (const session of this.#sessions.values()) {
      if (session.client === client) ofClient++;
      if (session.caller.workspace === caller.workspace) ofWorkspace++;
    }
    if (ofClient >= (this.#options.maxSessionsPerClient ?? 256)) {
      return 'this runtime client has too many open sessions; close some or try again later';
    }
    if (ofWorkspace >= (this.#options.maxSessions ?? 10_000)) {
      return 'too many open sessions in this workspace; try again later';
    }
    return null;
  }

  /** Closes the least recently used session of the same owner when it has its maximum open. */
  #makeRoom(owner: string): void {
    const max = this.#options.maxSessionsPerOwner ?? 16;
    const own = [...this.#sessions].filter(([, session]) => session.owner === owner);
    if (own.length < max) return;
    const [id, oldest] = own.reduce((a, b) => (b[1].lastUsed < a[1].lastUsed ? b : a));
    this.#closeSession(id, oldest);
  }

  /**
   * Closes sessions unused for the idle time, sooner when they only initialized or when their
   * last token is no longer active (expired, revoked or disabled).
   */
  #closeIdle(idleMs: number): void {
    const now = Date.now();
    for (const [id, session] of this.#sessions) {
      const idle = now - session.lastUsed;
      if (
        idle > idleMs ||
        (session.requests <= 1 && idle > UNUSED_SESSION_MS) ||
        (idle > INACTIVE_SESSION_MS && !session.caller.isActive())
      ) {
        this.#closeSession(id, session);
      }
    }
  }

  #closeSession(id: string, session: Session): void {
    this.#sessions.delete(id);
    void session.transport.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    const open = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(open.map((session) => session.transport.close().catch(() => undefined)));
  }
}

/**
 * Returns who may use a session: the same client, agent and identity in the same scope, for the same
 * invoker and thread. A new token for that caller continues the session.
 */
function ownerOf(caller: GatewayCaller): string {
  return JSON.stringify([
    caller.workspace,
    caller.clientId,
    caller.agent,
    caller.identity,
    caller.scope,
    caller.invoker ?? null,
    caller.thread ?? null,
  ]);
}

interface PlainToolCall {
  jsonrpc: '2.0';
  id: string | number;
  method: 'tools/call';
  params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> };
}

/** Tests for a single `tools/call` request without a progress token, with well-formed params. */
function isPlainToolCall(body: unknown): body is PlainToolCall {
  if (!isObject(body) || body.jsonrpc !== '2.0' || body.method !== 'tools/call') return false;
  if (typeof body.id !== 'string' && typeof body.id !== 'number') return false;
  const params = body.params;
  if (!isObject(params) || typeof params.name !== 'string') return false;
  if (params.arguments !== undefined && !isObject(params.arguments)) return false;
  if (params._meta !== undefined && (!isObject(params._meta) || 'progressToken' in params._meta)) {
    return false;
  }
  return true;
}

/**
 * Tests whether the response may be one JSON body: it accepts application/json and
 * names a protocol version the SDK server also accepts. Anything else goes to the SDK
 * server, which gives the standard errors.
 */
function acceptsPlainJson(request: IncomingMessage): boolean {
  const accept = request.headers.accept ?? '';
  const version = request.headers['mcp-protocol-version'];
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return (
    type === 'application/json' &&
    accept.includes('application/json') &&
    accept.includes('text/event-stream') &&
    (version === undefined || SUPPORTED_PROTOCOL_VERSIONS.includes(version as string))
  );
}

async function answerToolCall(
  response: ServerResponse,
  body: PlainToolCall,
  call: (name: string, args: Record<string, unknown>) => Promise<unknown>,
  logger: Logger,
): Promise<void> {
  let reply: Record<string, unknown>;
  try {
    const result = await call(body.params.name, body.params.arguments ?? {});
    reply = { jsonrpc: '2.0', id: body.id, result };
  } catch (error) {
    let failure: Record<string, unknown> = { code: -32603, message: 'Internal error' };
    if (error instanceof ProtocolError) {
      failure = { code: error.code, message: error.message };
      if (error.data !== undefined) failure.data = error.data;
    } else {
      logger.error({ err: error }, 'tool call failed');
    }
    reply = { jsonrpc: '2.0', id: body.id, error: failure };
  }
  response.statusCode = 200;
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify(reply));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clientOf(caller: GatewayCaller): string {
  return JSON.stringify([caller.workspace, caller.clientId, caller.agent]);
}

function authInfo(caller: GatewayCaller) {
  return {
    token: '',
    clientId: caller.clientId,
    scopes: [...caller.scopes],
    expiresAt: caller.expiresAt,
    extra: { caller },
  };
}

class BodyError {
  constructor(
    readonly status: number,
    readonly code: number,
    readonly message: string,
  ) {}
}

async function readJson(request: IncomingMessage, limit = 4_194_304): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) return new BodyError(413, -32600, `the request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return new BodyError(400, -32700, 'Parse error: the body is not valid JSON');
  }
}

function writeRpcError(response: ServerResponse, status: number, code: number, message: string) {
  response.statusCode = status;
  // The rest of a body that was too large is not read, so the connection cannot be reused.
  if (status === 413) response.setHeader('connection', 'close');
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }));
}
