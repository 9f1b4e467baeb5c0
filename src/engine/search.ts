/**
 * Search finds which agents, resources or actions are allowed by running the decision
 * procedure over the workspace's known agents, resources and actions. Results therefore agree
 * with evaluation by construction. Resources that appear only as patterns in the policy are not
 * enumerable; list them under a connection's `resources` to make them searchable.
 */
import type { PolicyEngine } from './engine.js';
import type { Decision } from './types.js';

export interface SearchScope {
  readonly workspace: string;
  readonly channel?: string | undefined;
  readonly invoker?: string | undefined;
}

/** Agents allowed to do `action` on `resource` in the scope. */
export function searchAgents(
  engine: PolicyEngine,
  scope: SearchScope,
  action: string,
  resource: string,
  now?: number,
): Decision[] {
  const workspace = engine.workspace(scope.workspace);
  if (!workspace) return [];
  return [...workspace.agents.keys()]
    .sort()
    .map((agent) => engine.decide({ ...scope, agent, action, resource }, now))
    .filter((decision) => decision.allowed);
}

/** Known resources, optionally of one type, that the agent may do `action` on. */
export function searchResources(
  engine: PolicyEngine,
  scope: SearchScope,
  agent: string,
  action: string,
  type: string | undefined,
  now?: number,
): Decision[] {
  const workspace = engine.workspace(scope.workspace);
  if (!workspace) return [];
  const prefix = type === undefined ? '' : `${type}:`;
  return workspace.knownResources
    .filter((resource) => resource.startsWith(prefix))
    .map((resource) => engine.decide({ ...scope, agent, action, resource }, now))
    .filter((decision) => decision.allowed);
}

/** Known actions that the agent may do on `resource`. */
export function searchActions(
  engine: PolicyEngine,
  scope: SearchScope,
  agent: string,
  resource: string,
  now?: number,
): Decision[] {
  const workspace = engine.workspace(scope.workspace);
  if (!workspace) return [];
  return workspace.knownActions
    .map((action) => engine.decide({ ...scope, agent, action, resource }, now))
    .filter((decision) => decision.allowed);
}
