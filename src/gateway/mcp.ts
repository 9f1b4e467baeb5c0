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
import type { Decision } from '../engine/types.js';
import type { Connection } from '../model/policy.js';
import type { GatewayCaller } from './bearer.js';
import { forwardToolCall, SessionExpiredError } from './http-upstream.js';
import { CallRevokedError, type InFlightCalls } from './in-flight.js';
import { McpTransport } from './mcp-transport.js';
import { PromptForwarder } from './prompts.js';
import { normalizeAuditRecord } from '../audit/event.js';
import { redactText, scrubSecrets } from './redact.js';
import { type CallOutcome, toolCallRecord } from './tool-record.js';
import {
  DENIED_ERROR_CODE,
  isToolVisible,
  namespaceTools,
  splitToolName,
  TOOL_ACTION,
  toolResource,
} from './tools.js';
import { isMcpConnection, type Upstream, type UpstreamPool } from './upstreams.js';

/** Version reported to MCP clients in `serverInfo`. */
const GATEWAY_VERSION = '0.1.0';

/** Maximum length of upstream error text in an audit event, in characters. */
const MAX_ERROR_TEXT = 500;

export interface McpGatewayOptions {
  deputy: Deputy;
  upstreams: UpstreamPool;
  inFlight: InFlightCalls;
}

/** A progress notification's values, without its token. */
type Progress = { progress: number; total?: number; message?: string };

type ResolvedTool =
  | { kind: 'found'; connection: Connection; tool: string; upstream: Upstream | null }
  | { kind: 'unavailable'; connection: Connection; tool: string }
  | { kind: 'unknown' };

export class McpGateway {
  readonly #deputy: Deputy;
  readonly #upstreams: UpstreamPool;
  readonly #transport: McpTransport;
  readonly #inFlight: InFlightCalls;
  readonly #prompts: PromptForwarder;
  /** When each unavailable connection was last logged, and how often it failed since. */
  readonly #failures = new Map<string, { loggedAt: number; repeated: number }>();

  constructor(options: McpGatewayOptions) {
    this.#deputy = options.deputy;
    this.#upstreams = options.upstreams;
    this.#inFlight = options.inFlight;
    this.#prompts = new PromptForwarder({
      deputy: options.deputy,
      inFlight: options.inFlight,
      connections: (caller) => this.#mcpConnections(caller),
      upstream: (caller, connection) => this.#upstream(caller, connection),
    });
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
    server.setRequestHandler('prompts/list', async () => ({
      prompts: await this.#prompts.list(caller()),
    }));
    server.setRequestHandler('prompts/get', async (request) => {
      const { name, arguments: args } = request.params;
      return await this.#prompts.get(caller(), name, args, randomUUID());
    });
    // NOTE: resources of upstream servers are not forwarded yet, so their lists are empty and
    // a subscription never produces an update.
    server.setRequestHandler('resources/list', async () => ({ resources: [] }));
    server.setRequestHandler('resources/templates/list', async () => ({ resourceTemplates: [] }));
    server.setRequestHandler('resources/subscribe', async () => ({}));
    server.setRequestHandler('resources/unsubscribe', async () => ({}));
    return server;
  }

  /** Lists the tools the caller's scope may call, from every reachable upstream. */
  async listTools(caller: GatewayCaller): Promise<Tool[]> {
    const connections = this.#mcpConnections(caller);
    const lists = await Promise.all(
      connections.map(async (connection) => {
        const visibleOf = (tools: readonly Tool[]) =>
          tools.filter((tool) =>
            isToolVisible(this.#deputy.engine, caller, connection.id, tool.name),
          );
        // A compartment's process starts only when the caller may call one of its tools, as
        // another compartment of the connection lists them.
        const known = this.#knownTools(caller, connection);
        if (known !== null && visibleOf(known).length === 0) return [];

        const upstream = await this.#upstream(caller, connection).catch(() => null);
        if (upstream === null) return [];
        // Tool names and descriptions come from the upstream, so the credential is scrubbed.
        return scrubSecrets(
          namespaceTools(connection.id, visibleOf(upstream.tools)),
          secretsOf(upstream),
        );
      }),
    );
    return lists.flat();
  }

  /**
   * Decides a tool call, forwards it when allowed and records it. Throws a ProtocolError for a
   * denied call and an unavailable or failed upstream; an unknown tool and a tool's own error
   * are results.
   */
  async callTool(
    caller: GatewayCaller,
    name: string,
    args: Record<string, unknown>,
    requestId: string,
    onProgress?: (progress: Progress) => void,
  ): Promise<CallToolResult> {
    const started = performance.now();
    const resolved = await this.#resolveTool(caller, name);
    const target = resolved.kind === 'found' ? resolved : null;
    let secrets = secretsOf(target?.upstream ?? undefined);
    const record = (
      outcome: CallOutcome,
      decision: Decision | null,
      error?: string,
      deferred = false,
    ): Promise<unknown> =>
      this.#deputy.audit[deferred ? 'appendDeferred' : 'append'](
        toolCallRecord({
          caller,
          name,
          target:
            resolved.kind === 'unavailable'
              ? { connection: resolved.connection, tool: resolved.tool }
              : target,
          args,
          requestId,
          decision,
          outcome,
          latencyMs: performance.now() - started,
          ...(error === undefined ? {} : { error }),
          secrets,
        }),
      );

    if (resolved.kind === 'unavailable') {
      await record('upstream_unavailable', null);
      throw new ProtocolError(
        ProtocolErrorCode.InternalError,
        `${name} is unavailable: connection ${resolved.connection.id} could not be started; see the server log`,
      );
    }
    // An unknown tool is a tool error, as most servers report it, so a model can correct the
    // name; it is recorded like a denial.
    if (target === null) {
      await record('unknown_tool', null);
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
      const { reason, guardrail, decisionId } = decision!;
      await record('denied', decision!);
      const rule = guardrail === null ? '' : ` (guardrail ${guardrail})`;
      throw new ProtocolError(DENIED_ERROR_CODE, `Deputy denied ${name}: ${reason}${rule}`, {
        reason,
        decision_id: decisionId,
        ...(guardrail === null ? {} : { guardrail }),
      });
    }

    let upstream = target.upstream;
    if (upstream === null) {
      try {
        upstream = await this.#upstream(caller, target.connection);
      } catch {
        await record('upstream_unavailable', decision!);
        throw new ProtocolError(
          ProtocolErrorCode.InternalError,
          `${name} is unavailable: connection ${target.connection.id} could not be started; ` +
            'see the server log',
        );
      }
      secrets = secretsOf(upstream);
    }

    // Fail closed: the outcome event must be storable before the call is made.
    try {
      normalizeAuditRecord(
        toolCallRecord({
          caller,
          name,
          target,
          args,
          requestId,
          decision: decision!,
          outcome: 'ok',
          latencyMs: 0,
          secrets,
        }),
      );
    } catch (error) {
      this.#deputy.logger.error({ err: error, requestId }, 'tool call record invalid; denying');
      throw new ProtocolError(DENIED_ERROR_CODE, `Deputy denied ${name}: audit_unavailable`, {
        reason: 'audit_unavailable',
        decision_id: decision!.decisionId,
      });
    }

    // Progress messages are scrubbed of the credential like results.
    const relay =
      onProgress && secrets.length > 0
        ? (progress: Progress) => onProgress(scrubSecrets(progress, secrets))
        : onProgress;
    let result: CallToolResult;
    try {
      result = await this.#forward(caller, { ...target, upstream }, args, relay);
    } catch (error) {
      if (error instanceof CallRevokedError) {
        await record(error.sent ? 'revoked' : 'revoked_before_send', decision!);
        throw new ProtocolError(DENIED_ERROR_CODE, `Deputy stopped ${name}: ${error.message}`, {
          reason: error.reason,
          decision_id: decision!.decisionId,
        });
      }
      const text = redactText(String((error as Error).message ?? error), secrets);
      await record('upstream_error', decision!, text.slice(0, MAX_ERROR_TEXT));
      throw new ProtocolError(ProtocolErrorCode.InternalError, `${name} failed upstream: ${text}`);
    }

    // The credential never reaches the model, even when a tool echoes its environment.
    if (secrets.length > 0) result = scrubSecrets(result, secrets);
    const outcome = result.isError === true ? 'tool_error' : 'ok';
    const error = outcome === 'tool_error' ? errorText(result) : undefined;
    // The decision was recorded before forwarding; the outcome is recorded without holding the
    // result back. NOTE: a crash before its commit loses the outcome, not the decision.
    record(outcome, decision!, error, true).catch((auditError: unknown) =>
      this.#deputy.logger.error(
        { err: auditError, requestId },
        'audit write of a tool outcome failed',
      ),
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
    const viaSdk = (upstream: Upstream, signal: AbortSignal) =>
      upstream.client.callTool(
        { name: tool, arguments: args },
        {
          timeout: connection.timeout_ms,
          signal,
          ...(onProgress ? { onprogress: onProgress, resetTimeoutOnProgress: true } : {}),
        },
      ) as Promise<CallToolResult>;

    // A call in flight stops when its token stops being active (the kill switch), and a call
    // is checked once more right before it is sent, after any wait for a slot.
    return await this.#inFlight.run(caller.isActive, async (signal, ensureActive) => {
      const { upstream } = target;
      const send = <T>(call: () => Promise<T>) =>
        upstream.limit(() => {
          ensureActive();
          return call();
        });
      if (upstream.http === null || onProgress !== undefined) {
        return await send(() => viaSdk(upstream, signal));
      }
      try {
        return await send(() =>
          forwardToolCall(upstream.http!, tool, args, connection.timeout_ms, signal),
        );
      } catch (error) {
        if (!(error instanceof SessionExpiredError)) throw error;
        await upstream.client.close().catch(() => undefined);
        const reopened = await this.#upstream(caller, connection);
        return await reopened.limit(() => {
          ensureActive();
          return viaSdk(reopened, signal);
        });
      }
    });
  }

  /**
   * Finds the upstream tool a gateway name refers to. A name whose connection could not be
   * started is `unavailable`, so the caller learns why rather than that the tool is unknown.
   */
  async #resolveTool(caller: GatewayCaller, name: string): Promise<ResolvedTool> {
    let unavailable: ResolvedTool | null = null;
    for (const candidate of splitToolName(name, this.#mcpConnections(caller))) {
      // A compartment's process is started only after the decision allows the call.
      const known = this.#knownTools(caller, candidate.connection);
      if (known !== null) {
        if (known.some((tool) => tool.name === candidate.tool)) {
          return { kind: 'found', ...candidate, upstream: null };
        }
        continue;
      }
      const upstream = await this.#upstream(caller, candidate.connection).catch(() => null);
      if (upstream === null) {
        unavailable ??= { kind: 'unavailable', ...candidate };
      } else if (upstream.tools.some((tool) => tool.name === candidate.tool)) {
        return { kind: 'found', ...candidate, upstream };
      }
    }
    return unavailable ?? { kind: 'unknown' };
  }

  /** Tools of a compartment connection, as a running compartment lists them; null otherwise. */
  #knownTools(caller: GatewayCaller, connection: Connection): Tool[] | null {
    if (!connection.compartments) return null;
    return this.#upstreams.knownTools(caller.workspace, connection);
  }

  #mcpConnections(caller: GatewayCaller): Connection[] {
    const policy = this.#deputy.engine.workspace(caller.workspace)?.policy;
    return (policy?.connections ?? []).filter(isMcpConnection);
  }

  async #upstream(caller: GatewayCaller, connection: Connection): Promise<Upstream> {
    try {
      return await this.#upstreams.get(caller.workspace, connection, compartmentOf(caller));
    } catch (error) {
      // Every tools/list tries again, so a lasting failure is logged once a minute, counted.
      const key = `${caller.workspace}/${connection.id}`;
      const last = this.#failures.get(key);
      const now = Date.now();
      if (last === undefined || now - last.loggedAt > 60_000) {
        this.#deputy.logger.error(
          {
            err: error,
            workspace: caller.workspace,
            connection: connection.id,
            repeated: last?.repeated ?? 0,
          },
          'upstream MCP server unavailable',
        );
        this.#failures.set(key, { loggedAt: now, repeated: 0 });
      } else {
        last.repeated++;
      }
      throw error;
    }
  }
}

/**
 * Returns the memory compartment of a caller: its agent and identity. Private channels and DMs have
 * identities of their own, so each gets a separate store; the workspace and public channels
 * share the agent's.
 */
export function compartmentOf(caller: GatewayCaller): string {
  return `${caller.agent}\u0000${caller.identity}`;
}

function secretsOf(upstream: Upstream | undefined): string[] {
  return upstream ? [...upstream.secretForms] : [];
}

function errorText(result: CallToolResult): string {
  return result.content
    .map((block) => (block.type === 'text' ? block.text : ''))
    .join(' ')
    .slice(0, MAX_ERROR_TEXT);
}
