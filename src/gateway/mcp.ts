/**
 * The MCP gateway: one Streamable HTTP endpoint that serves the 2025-11-25 and 2026-07-28
 * revisions, aggregates the tools of the upstream MCP servers, decides every call, forwards it
 * with the agent's own credential, and records it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import { ProtocolError, ProtocolErrorCode, Server } from '@modelcontextprotocol/server';

import type { Deputy } from '../deputy.js';
import type { Connection } from '../model/policy.js';
import type { GatewayCaller } from './bearer.js';
import { forwardToolCall, SessionExpiredError } from './http-upstream.js';
import { McpTransport } from './mcp-transport.js';
import { hashArguments, redactText, redactValue } from './redact.js';
import {
  isToolVisible,
  namespaceTools,
  splitToolName,
  TOOL_ACTION,
  toolResource,
} from './tools.js';
import { isMcpConnection, type Upstream, type UpstreamPool } from './upstreams.js';

/** JSON-RPC error code of a tool call that Deputy denied. */
export const DENIED_ERROR_CODE = -32001;

/** Version reported to MCP clients in `serverInfo`. */
const GATEWAY_VERSION = '0.1.0';

/** Maximum length of upstream error text in an audit event, in characters. */
const MAX_ERROR_TEXT = 500;

export interface McpGatewayOptions {
  deputy: Deputy;
  upstreams: UpstreamPool;
}

/** Outcome of a tool call, as recorded. */
type CallOutcome = 'ok' | 'tool_error' | 'denied' | 'upstream_error' | 'unknown_tool';

export class McpGateway {
  readonly #deputy: Deputy;
  readonly #upstreams: UpstreamPool;
  readonly #transport: McpTransport;

  constructor(options: McpGatewayOptions) {
    this.#deputy = options.deputy;
    this.#upstreams = options.upstreams;
    this.#transport = new McpTransport({
      createServer: (caller) => this.#server(caller),
      callTool: (caller, name, args, requestId) => this.callTool(caller, name, args, requestId),
      logger: options.deputy.logger,
    });
  }

  /** Number of open 2025-11-25 sessions. */
  get sessions(): number {
    return this.#transport.sessions;
  }

  /** Serves one authenticated HTTP request to the MCP endpoint. */
  async handle(request: IncomingMessage, response: ServerResponse, caller: GatewayCaller) {
    await this.#transport.handle(request, response, caller);
  }

  async close(): Promise<void> {
    await this.#transport.close();
  }

  #server(caller: () => GatewayCaller): Server {
    const server = new Server(
      { name: 'deputy-gateway', version: GATEWAY_VERSION },
      { capabilities: { tools: {}, resources: { subscribe: true }, prompts: {}, logging: {} } },
    );
    server.setRequestHandler('tools/list', async () => ({ tools: await this.listTools(caller()) }));
    server.setRequestHandler('tools/call', async (request, context) => {
      const { name, arguments: args, _meta: meta } = request.params;
      const progressToken = meta?.progressToken;
      const onProgress =
        progressToken === undefined
          ? undefined
          : (progress: { progress: number; total?: number; message?: string }) =>
              void context.mcpReq
                .notify({
                  method: 'notifications/progress',
                  params: { ...progress, progressToken },
                })
                .catch(() => undefined);
      return await this.callTool(caller(), name, args ?? {}, randomUUID(), onProgress);
    });
    // NOTE: only tools are forwarded. Resources and prompts of upstream servers are not
    // exposed yet, so their lists are empty and a subscription never produces an update.
    server.setRequestHandler('resources/list', async () => ({ resources: [] }));
    server.setRequestHandler('resources/templates/list', async () => ({ resourceTemplates: [] }));
    server.setRequestHandler('resources/subscribe', async () => ({}));
    server.setRequestHandler('resources/unsubscribe', async () => ({}));
    server.setRequestHandler('prompts/list', async () => ({ prompts: [] }));
    return server;
  }

  /** The tools the caller's scope may call, from every reachable upstream. */
  async listTools(caller: GatewayCaller): Promise<Tool[]> {
    const connections = this.#mcpConnections(caller);
    const lists = await Promise.all(
      connections.map(async (connection) => {
        const upstream = await this.#upstream(caller, connection).catch(() => null);
        if (upstream === null) return [];
        const visible = upstream.tools.filter((tool) =>
          isToolVisible(this.#deputy.engine, caller, connection.id, tool.name),
        );
        return namespaceTools(connection.id, visible);
      }),
    );
    return lists.flat();
  }

  /**
   * Decides a tool call, forwards it when allowed and records it. Throws a ProtocolError for a
   * denied call and an upstream failure; an unknown tool and a tool's own error are results.
   */
  async callTool(
    caller: GatewayCaller,
    name: string,
    args: Record<string, unknown>,
    requestId: string,
    onProgress?: (progress: { progress: number; total?: number; message?: string }) => void,
  ): Promise<CallToolResult> {
    const started = performance.now();
    const target = await this.#resolveTool(caller, name);
    const record = (
      outcome: CallOutcome,
      detail: Record<string, unknown>,
      decisionId: string | null,
    ) => this.#record(caller, name, target, args, requestId, started, outcome, detail, decisionId);

    // An unknown tool is a tool error, as most servers report it, so a model can correct the
    // name; it is recorded like a denial.
    if (target === null) {
      await record('unknown_tool', {}, null);
      return { content: [{ type: 'text', text: `Unknown tool: ${name}` }], isError: true };
    }

    const [decision] = await this.#deputy.decide(
      [
        {
          workspace: caller.workspace,
          agent: caller.agent,
          channel: caller.channel,
          invoker: caller.invoker,
          action: TOOL_ACTION,
          resource: toolResource(target.connection.id, target.tool),
        },
      ],
      { actor: { type: 'agent', id: caller.agent }, requestId },
    );
    if (!decision!.allowed) {
      const reason = decision!.reason;
      await record('denied', { reason }, decision!.decisionId);
      const guardrail = decision!.guardrail === null ? '' : ` (guardrail ${decision!.guardrail})`;
      throw new ProtocolError(DENIED_ERROR_CODE, `Deputy denied ${name}: ${reason}${guardrail}`, {
        reason,
        decision_id: decision!.decisionId,
        ...(decision!.guardrail === null ? {} : { guardrail: decision!.guardrail }),
      });
    }

    const { upstream, connection, tool } = target;
    let result: CallToolResult;
    try {
      result = await this.#forward(caller, target, args, onProgress);
    } catch (error) {
      const text = redactText(String((error as Error).message ?? error), secretsOf(upstream));
      await record(
        'upstream_error',
        { error: text.slice(0, MAX_ERROR_TEXT) },
        decision!.decisionId,
      );
      throw new ProtocolError(ProtocolErrorCode.InternalError, `${name} failed upstream: ${text}`);
    }

    const outcome = result.isError === true ? 'tool_error' : 'ok';
    const detail = outcome === 'tool_error' ? { error: errorText(result, upstream) } : {};
    // The decision was recorded before forwarding; the outcome is recorded without holding the
    // result back. NOTE: a crash before its commit loses the outcome, not the decision.
    record(outcome, detail, decision!.decisionId).catch((error: unknown) =>
      this.#deputy.logger.error({ err: error, requestId }, 'audit write of a tool outcome failed'),
    );
    return result;
  }

  /**
   * Sends a call upstream. Calls to Streamable HTTP upstreams go out directly on the SDK
   * client's session, unless progress is requested; an expired session is opened again once.
   */
  async #forward(
    caller: GatewayCaller,
    target: { connection: Connection; tool: string; upstream: Upstream },
    args: Record<string, unknown>,
    onProgress:
      ((progress: { progress: number; total?: number; message?: string }) => void) | undefined,
  ): Promise<CallToolResult> {
    const { connection, tool } = target;
    const viaSdk = (upstream: Upstream) =>
      upstream.client.callTool(
        { name: tool, arguments: args },
        {
          timeout: connection.timeout_ms,
          ...(onProgress ? { onprogress: onProgress, resetTimeoutOnProgress: true } : {}),
        },
      ) as Promise<CallToolResult>;

    const { upstream } = target;
    if (upstream.http === null || onProgress !== undefined)
      return await upstream.limit(() => viaSdk(upstream));
    try {
      return await upstream.limit(() =>
        forwardToolCall(upstream.http!, tool, args, connection.timeout_ms),
      );
    } catch (error) {
      if (!(error instanceof SessionExpiredError)) throw error;
      await upstream.client.close().catch(() => undefined);
      const reopened = await this.#upstream(caller, connection);
      return await reopened.limit(() => viaSdk(reopened));
    }
  }

  /** The upstream tool a gateway name refers to, or null when no upstream lists it. */
  async #resolveTool(caller: GatewayCaller, name: string) {
    for (const candidate of splitToolName(name, this.#mcpConnections(caller))) {
      const upstream = await this.#upstream(caller, candidate.connection).catch(() => null);
      if (upstream?.tools.some((tool) => tool.name === candidate.tool)) {
        return { ...candidate, upstream };
      }
    }
    return null;
  }

  #mcpConnections(caller: GatewayCaller): Connection[] {
    const policy = this.#deputy.engine.workspace(caller.workspace)?.policy;
    return (policy?.connections ?? []).filter(isMcpConnection);
  }

  async #upstream(caller: GatewayCaller, connection: Connection): Promise<Upstream> {
    try {
      return await this.#upstreams.get(caller.workspace, connection, compartmentOf(caller));
    } catch (error) {
      this.#deputy.logger.error(
        { err: error, workspace: caller.workspace, connection: connection.id },
        'upstream MCP server unavailable',
      );
      throw error;
    }
  }

  async #record(
    caller: GatewayCaller,
    name: string,
    target: { connection: Connection; tool: string; upstream: Upstream } | null,
    args: Record<string, unknown>,
    requestId: string,
    started: number,
    outcome: CallOutcome,
    detail: Record<string, unknown>,
    decisionId: string | null,
  ): Promise<void> {
    const connection = target?.connection;
    const recordArguments = connection?.audit_arguments === true;
    await this.#deputy.audit.append({
      type: 'tool.call',
      workspace: caller.workspace,
      actor: { type: 'agent', id: caller.agent },
      identity: caller.identity,
      invoker: caller.invoker ?? null,
      scope: caller.scope,
      action: TOOL_ACTION,
      resource: target ? toolResource(target.connection.id, target.tool) : null,
      connection: connection?.id ?? null,
      decision: outcome === 'denied' || outcome === 'unknown_tool' ? 'deny' : 'allow',
      reason:
        typeof detail.reason === 'string'
          ? detail.reason
          : outcome === 'unknown_tool'
            ? 'unknown_tool'
            : 'granted',
      decision_id: decisionId,
      request_id: requestId,
      detail: {
        tool: name,
        outcome,
        arguments_sha256: safeHash(args),
        ...(recordArguments ? { arguments: redactValue(args, secretsOf(target?.upstream)) } : {}),
        latency_ms: Math.round((performance.now() - started) * 100) / 100,
        ...(caller.thread === undefined ? {} : { thread: caller.thread }),
        ...(typeof detail.error === 'string' ? { error: detail.error } : {}),
      },
    });
  }
}

/**
 * The memory compartment of a caller: its agent and identity. Private channels and DMs have
 * identities of their own, so each gets a separate store; the workspace and public channels
 * share the agent's.
 */
export function compartmentOf(caller: GatewayCaller): string {
  return `${caller.agent}\u0000${caller.identity}`;
}

function secretsOf(upstream: Upstream | undefined): string[] {
  return upstream?.secret ? [upstream.secret] : [];
}

function errorText(result: CallToolResult, upstream: Upstream): string {
  const text = result.content
    .map((block) => (block.type === 'text' ? block.text : ''))
    .join(' ')
    .slice(0, MAX_ERROR_TEXT);
  return redactText(text, secretsOf(upstream));
}

function safeHash(args: unknown): string | null {
  try {
    return hashArguments(args);
  } catch {
    return null;
  }
}
