import type { Decision, DecisionRequest } from '../../engine/types.js';
import type { PolicyEngine } from '../../engine/engine.js';
import type { ContextInput, SubjectInput } from './schemas.js';

/**
 * Maps an AuthZEN subject, action, resource and context onto a decision request. A subject
 * without a workspace uses the only loaded workspace; with several loaded it names none.
 */
export function toDecisionRequest(
  engine: PolicyEngine,
  subject: { type: string; id?: string | undefined; properties?: SubjectInput['properties'] },
  action: { name: string },
  resource: { type: string; id: string },
  context: ContextInput | undefined,
): DecisionRequest {
  return {
    workspace: subject.properties?.workspace ?? defaultWorkspace(engine),
    agent: subject.type === 'agent' ? (subject.id ?? '') : '',
    channel: subject.properties?.channel,
    invoker: context?.invoker,
    action: action.name,
    resource: `${resource.type}:${resource.id}`,
  };
}

function defaultWorkspace(engine: PolicyEngine): string {
  const ids = engine.workspaceIds();
  return ids.length === 1 ? (ids[0] as string) : '';
}

/** Builds the AuthZEN response for a decision: `decision` plus Deputy's details in `context`. */
export function toEvaluationResponse(decision: Decision) {
  return {
    decision: decision.allowed,
    context: {
      reason: decision.reason,
      decision_id: decision.decisionId,
      revision: decision.revision,
      workspace: decision.workspace,
      scope: decision.scope,
      identity: decision.identity,
      invoker: decision.invoker,
      bundle: decision.bundle,
      attachment: decision.attachment,
      grant: decision.grant,
      connection: decision.connection,
      guardrail: decision.guardrail,
      detail: decision.detail,
    },
  };
}
