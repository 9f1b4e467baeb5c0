/** The `tool.call` audit event of a call through the MCP gateway. */
import type { AuditRecordInput } from '../audit/event.js';
import type { Decision } from '../engine/types.js';
import type { Connection } from '../model/policy.js';
import type { GatewayCaller } from './bearer.js';
import { hashArguments, redactValue } from './redact.js';
import { PROMPT_ACTION, promptResource, TOOL_ACTION, toolResource } from './tools.js';

/** Outcome of a tool call, as recorded. */
export type CallOutcome =
  | 'ok'
  | 'tool_error'
  | 'denied'
  | 'upstream_error'
  | 'upstream_unavailable'
  | 'unknown_tool'
  | 'revoked'
  | 'revoked_before_send';

export interface ToolCallFacts {
  /** A tool call (`tool.call` events) or a prompt request (`prompt.get` events). @default 'tool' */
  kind?: 'tool' | 'prompt';
  caller: GatewayCaller;
  /** The tool name as the caller sent it. */
  name: string;
  /** The connection and upstream tool it resolved to, when it did. */
  target: { connection: Connection; tool: string } | null;
  args: Record<string, unknown>;
  requestId: string;
  /** The decision, once made. */
  decision: Decision | null;
  outcome: CallOutcome;
  latencyMs: number;
  /** Upstream error text, already redacted. */
  error?: string;
  /** Secrets to redact from recorded arguments. */
  secrets: readonly string[];
}

/** Maximum length of recorded arguments as JSON text, in characters; longer ones are cut. */
const MAX_RECORDED_ARGUMENTS = 16_384;

/** Maximum length of a recorded tool name, in characters. */
const MAX_RECORDED_NAME = 256;

/**
 * Builds the `tool.call` event. Its size is bounded whatever the caller sent, so that no
 * argument can make the event too large to store and keep a call out of the log.
 */
export function toolCallRecord(facts: ToolCallFacts): AuditRecordInput {
  const { caller, target, decision, outcome } = facts;
  // A call stopped by the kill switch after it was sent may have taken effect upstream, so it
  // is recorded as allowed, with its reason. One stopped before it was sent is a denial.
  const denied = ['denied', 'unknown_tool', 'upstream_unavailable', 'revoked_before_send'].includes(
    outcome,
  );
  let reason: string = decision?.reason ?? outcome;
  if (outcome === 'upstream_unavailable') reason = 'upstream_unavailable';
  if (outcome === 'revoked' || outcome === 'revoked_before_send') reason = 'token_revoked';
  const prompt = facts.kind === 'prompt';
  return {
    type: prompt ? 'prompt.get' : 'tool.call',
    workspace: caller.workspace,
    actor: { type: 'agent', id: caller.agent },
    identity: caller.identity,
    invoker: caller.invoker ?? null,
    scope: caller.scope,
    action: prompt ? PROMPT_ACTION : TOOL_ACTION,
    resource: target
      ? (prompt ? promptResource : toolResource)(target.connection.id, target.tool)
      : null,
    connection: target?.connection.id ?? null,
    decision: denied ? 'deny' : 'allow',
    reason,
    bundle: decision?.bundle ?? null,
    grant: decision?.grant ?? null,
    revision: decision?.revision ?? null,
    decision_id: decision?.decisionId ?? null,
    request_id: facts.requestId,
    detail: {
      tool: facts.name.slice(0, MAX_RECORDED_NAME),
      outcome,
      arguments_sha256: hashArguments(facts.args),
      ...(target?.connection.audit_arguments ? recordedArguments(facts.args, facts.secrets) : {}),
      latency_ms: Math.round(facts.latencyMs * 100) / 100,
      ...(caller.thread === undefined ? {} : { thread: caller.thread }),
      ...(facts.error === undefined ? {} : { error: facts.error }),
    },
  };
}

/** Returns the arguments as recorded: redacted, and as a cut JSON text when too long. */
function recordedArguments(args: unknown, secrets: readonly string[]): Record<string, unknown> {
  const redacted = redactValue(args, secrets);
  const text = JSON.stringify(redacted);
  if (text.length <= MAX_RECORDED_ARGUMENTS) return { arguments: redacted };
  return {
    arguments_truncated: text.slice(0, MAX_RECORDED_ARGUMENTS),
    arguments_length: text.length,
  };
}
