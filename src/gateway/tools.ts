/**
 * Tools of the upstream MCP servers as the gateway shows them: namespaced per connection, and
 * only those the caller's scope may call.
 */
import type { Tool } from '@modelcontextprotocol/client';

import type { PolicyEngine } from '../engine/engine.js';
import type { Connection } from '../model/policy.js';
import type { GatewayCaller } from './bearer.js';

/** Separator between the connection id and the upstream tool name. */
export const TOOL_SEPARATOR = '__';

/** JSON-RPC error code of a tool call or prompt request that Deputy denied or stopped. */
export const DENIED_ERROR_CODE = -32001;

/** Action decided for every tool call. */
export const TOOL_ACTION = 'tool.call';

/** Returns the gateway's name for an upstream tool. */
export function gatewayToolName(connection: string, tool: string): string {
  return `${connection}${TOOL_SEPARATOR}${tool}`;
}

/** Action decided for every prompt request. */
export const PROMPT_ACTION = 'prompt.get';

/** Returns the resource decided for a prompt request: `prompt:<connection>/<prompt>`. */
export function promptResource(connection: string, prompt: string): string {
  return `prompt:${connection}/${prompt}`;
}

/** Returns the resource decided for a tool call: `tool:<connection>/<tool>`. */
export function toolResource(connection: string, tool: string): string {
  return `tool:${connection}/${tool}`;
}

/**
 * Splits a gateway tool name into the MCP connections it could name. Connection ids may
 * contain `__` themselves, so every split is returned and the caller keeps the one whose
 * upstream lists the tool.
 */
export function splitToolName(
  name: string,
  connections: readonly Connection[],
): Array<{ connection: Connection; tool: string }> {
  const candidates: Array<{ connection: Connection; tool: string }> = [];
  for (const connection of connections) {
    const prefix = `${connection.id}${TOOL_SEPARATOR}`;
    if (name.startsWith(prefix) && name.length > prefix.length) {
      candidates.push({ connection, tool: name.slice(prefix.length) });
    }
  }
  return candidates;
}

/**
 * Tests whether the caller's scope could call the tool. A tool whose grant needs approval is shown,
 * so the agent can ask for it; the call itself is decided again.
 */
export function isToolVisible(
  engine: PolicyEngine,
  caller: GatewayCaller,
  connection: string,
  tool: string,
): boolean {
  const decision = engine.decide({
    workspace: caller.workspace,
    agent: caller.agent,
    channel: caller.channel,
    invoker: caller.invoker,
    action: TOOL_ACTION,
    resource: toolResource(connection, tool),
  });
  return decision.allowed || decision.reason === 'approval_required';
}

/** Upstream tools listed under gateway names, in a stable order. */
export function namespaceTools(connection: string, tools: readonly Tool[]): Tool[] {
  return tools.map((tool) => ({ ...tool, name: gatewayToolName(connection, tool.name) }));
}
