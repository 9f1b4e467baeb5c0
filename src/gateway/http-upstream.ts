/**
 * Direct forwarding of `tools/call` to a Streamable HTTP upstream on the session its SDK
 * client opened: one POST with undici, and the response read as JSON or as an SSE stream.
 * It skips the client's request and result processing, which the caller's own client does.
 */
import type { CallToolResult } from '@modelcontextprotocol/client';
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/server';
import { type Dispatcher, request } from 'undici';

/** The upstream session of an SDK client, as the forwarder uses it. */
export interface HttpSession {
  readonly url: URL;
  readonly sessionId: string | undefined;
  readonly protocolVersion: string | undefined;
  /** Credential headers of the connection. */
  readonly headers: Readonly<Record<string, string>>;
  /** The agent that checks every address it connects to. */
  readonly dispatcher: Dispatcher;
}

/** Raised when the upstream answers HTTP 404 for the session, so it can be opened again. */
export class SessionExpiredError extends Error {
  constructor() {
    super('the upstream MCP session expired');
    this.name = 'SessionExpiredError';
  }
}

let nextId = 1;

export async function forwardToolCall(
  session: HttpSession,
  name: string,
  args: Record<string, unknown>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<CallToolResult> {
  const id = `deputy-${nextId++}`;
  const headers: Record<string, string> = {
    ...session.headers,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (session.sessionId !== undefined) headers['mcp-session-id'] = session.sessionId;
  if (session.protocolVersion !== undefined)
    headers['mcp-protocol-version'] = session.protocolVersion;

  const response = await request(session.url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name, arguments: args },
    }),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    dispatcher: session.dispatcher,
    ...(signal ? { signal } : {}),
  });
  if (response.statusCode === 404 && session.sessionId !== undefined) {
    await response.body.dump();
    throw new SessionExpiredError();
  }
  const type = String(response.headers['content-type'] ?? '');
  const text = await response.body.text();
  if (response.statusCode < 200 || response.statusCode >= 300) {
    throw new ProtocolError(
      ProtocolErrorCode.InternalError,
      `the upstream answered HTTP ${response.statusCode}`,
    );
  }
  const message = type.startsWith('text/event-stream')
    ? fromEventStream(text, id)
    : JSON.parse(text);
  return resultOf(message, id);
}

/** Finds the JSON-RPC response with `id` among the `data` fields of an SSE stream. */
function fromEventStream(text: string, id: string): unknown {
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
      .join('\n');
    if (data === '') continue;
    const message = JSON.parse(data) as { id?: unknown };
    if (message.id === id) return message;
  }
  throw new ProtocolError(
    ProtocolErrorCode.InternalError,
    'the upstream closed the stream without a result',
  );
}

function resultOf(message: unknown, id: string): CallToolResult {
  const reply = message as {
    id?: unknown;
    result?: unknown;
    error?: { code?: unknown; message?: unknown; data?: unknown };
  };
  if (reply.id !== id) {
    throw new ProtocolError(
      ProtocolErrorCode.InternalError,
      'the upstream answered another request',
    );
  }
  if (reply.error !== undefined) {
    const code =
      typeof reply.error.code === 'number' ? reply.error.code : ProtocolErrorCode.InternalError;
    throw new ProtocolError(
      code,
      String(reply.error.message ?? 'upstream error'),
      reply.error.data,
    );
  }
  const result = reply.result as CallToolResult | undefined;
  if (typeof result !== 'object' || result === null || !Array.isArray(result.content)) {
    throw new ProtocolError(
      ProtocolErrorCode.InternalError,
      'the upstream result is not a tool result',
    );
  }
  return result;
}
