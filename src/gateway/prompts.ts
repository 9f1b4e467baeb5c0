/**
 * Prompts of upstream MCP servers through the gateway: listed under `<connection>__<prompt>`
 * when the scope may get them (action `prompt.get` on `prompt:<connection>/<prompt>`), and
 * every `prompts/get` decided, forwarded and recorded like a tool call.
 */
import { performance } from 'node:perf_hooks';

import type { GetPromptResult, Prompt } from '@modelcontextprotocol/client';
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/server';

import type { Deputy } from '../deputy.js';
import type { Decision } from '../engine/types.js';
import type { Connection } from '../model/policy.js';
import type { GatewayCaller } from './bearer.js';
import { CallRevokedError, type InFlightCalls } from './in-flight.js';
import { redactText, scrubSecrets } from './redact.js';
import { type CallOutcome, toolCallRecord } from './tool-record.js';
import {
  DENIED_ERROR_CODE,
  gatewayToolName,
  PROMPT_ACTION,
  promptResource,
  splitToolName,
} from './tools.js';
import type { Upstream } from './upstreams.js';

export interface PromptForwarderOptions {
  deputy: Deputy;
  inFlight: InFlightCalls;
  /** The MCP connections of the caller's workspace. */
  connections(caller: GatewayCaller): Connection[];
  /** The caller's upstream of a connection, started if needed. */
  upstream(caller: GatewayCaller, connection: Connection): Promise<Upstream>;
}

export class PromptForwarder {
  readonly #options: PromptForwarderOptions;

  constructor(options: PromptForwarderOptions) {
    this.#options = options;
  }

  /**
   * Lists the prompts the caller's scope may get, from every reachable upstream.
   *
   * NOTE: servers with a process per compartment are left out, so that listing prompts never
   * starts a compartment's process.
   */
  async list(caller: GatewayCaller): Promise<Prompt[]> {
    const lists = await Promise.all(
      this.#connections(caller).map(async (connection) => {
        const upstream = await this.#options.upstream(caller, connection).catch(() => null);
        if (upstream === null) return [];
        const visible = upstream.prompts.filter((prompt) =>
          this.#visible(caller, connection.id, prompt.name),
        );
        const named = visible.map((prompt) => ({
          ...prompt,
          name: gatewayToolName(connection.id, prompt.name),
        }));
        return scrubSecrets(named, upstream.secretForms);
      }),
    );
    return lists.flat();
  }

  /** Decides a prompt request, forwards it when allowed and records it. */
  async get(
    caller: GatewayCaller,
    name: string,
    args: Record<string, string> | undefined,
    requestId: string,
  ): Promise<GetPromptResult> {
    const started = performance.now();
    const target = await this.#resolve(caller, name);
    const secrets = target ? [...target.upstream.secretForms] : [];
    const record = (outcome: CallOutcome, decision: Decision | null, error?: string) =>
      this.#options.deputy.audit.append(
        toolCallRecord({
          kind: 'prompt',
          caller,
          name,
          target,
          args: args ?? {},
          requestId,
          decision,
          outcome,
          latencyMs: performance.now() - started,
          secrets,
          ...(error === undefined ? {} : { error }),
        }),
      );

    if (target === null) {
      await record('unknown_tool', null);
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown prompt: ${name}`);
    }
    const [decision] = await this.#options.deputy.decide(
      [
        {
          workspace: caller.workspace,
          agent: caller.agent,
          channel: caller.channel,
          invoker: caller.invoker,
          action: PROMPT_ACTION,
          resource: promptResource(target.connection.id, target.tool),
        },
      ],
      { actor: { type: 'agent', id: caller.agent }, requestId },
    );
    if (!decision!.allowed) {
      await record('denied', decision!);
      throw new ProtocolError(DENIED_ERROR_CODE, `Deputy denied ${name}: ${decision!.reason}`, {
        reason: decision!.reason,
        decision_id: decision!.decisionId,
      });
    }

    const { upstream, connection, tool } = target;
    try {
      const result = await this.#options.inFlight.run(caller.isActive, (signal, ensureActive) =>
        upstream.limit(() => {
          ensureActive();
          return upstream.client.getPrompt(
            { name: tool, ...(args ? { arguments: args } : {}) },
            { timeout: connection.timeout_ms, signal },
          );
        }),
      );
      await record('ok', decision!);
      return scrubSecrets(result, secrets);
    } catch (error) {
      if (error instanceof CallRevokedError) {
        await record(error.sent ? 'revoked' : 'revoked_before_send', decision!);
        throw new ProtocolError(DENIED_ERROR_CODE, `Deputy stopped ${name}: ${error.message}`, {
          reason: error.reason,
        });
      }
      const text = redactText(String((error as Error).message ?? error), secrets);
      await record('upstream_error', decision!, text.slice(0, 500));
      throw new ProtocolError(ProtocolErrorCode.InternalError, `${name} failed upstream: ${text}`);
    }
  }

  #connections(caller: GatewayCaller): Connection[] {
    return this.#options.connections(caller).filter((connection) => !connection.compartments);
  }

  #visible(caller: GatewayCaller, connection: string, prompt: string): boolean {
    const decision = this.#options.deputy.engine.decide({
      workspace: caller.workspace,
      agent: caller.agent,
      channel: caller.channel,
      invoker: caller.invoker,
      action: PROMPT_ACTION,
      resource: promptResource(connection, prompt),
    });
    return decision.allowed || decision.reason === 'approval_required';
  }

  async #resolve(caller: GatewayCaller, name: string) {
    for (const candidate of splitToolName(name, this.#connections(caller))) {
      const upstream = await this.#options.upstream(caller, candidate.connection).catch(() => null);
      if (upstream?.prompts.some((prompt) => prompt.name === candidate.tool)) {
        return { ...candidate, upstream };
      }
    }
    return null;
  }
}
