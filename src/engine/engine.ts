import type { Policy } from '../model/policy.js';
import type { CompiledWorkspace } from './compiled.js';
import { compileWorkspace } from './compile.js';
import { decide } from './decide.js';
import type { Decision, DecisionRequest } from './types.js';

/**
 * Holds the active revision of every loaded workspace, compiled. Loading a revision compiles it
 * first and then replaces the previous one in a single assignment, so a decision uses either the
 * old revision or the new one, never a mix.
 */
export class PolicyEngine {
  #workspaces = new Map<string, CompiledWorkspace>();

  /** Compiles `policy` and makes it the active revision of its workspace. */
  load(policy: Policy, revision: number): CompiledWorkspace {
    const compiled = compileWorkspace(policy, revision);
    const current = this.#workspaces.get(compiled.id);
    // A slower reload of an older revision must never replace a newer one.
    if (current !== undefined && current.revision > revision) return current;
    this.#workspaces.set(compiled.id, compiled);
    return compiled;
  }

  unload(workspace: string): void {
    this.#workspaces.delete(workspace);
  }

  workspace(id: string): CompiledWorkspace | undefined {
    return this.#workspaces.get(id);
  }

  workspaceIds(): string[] {
    return [...this.#workspaces.keys()].sort();
  }

  /** Active revision of a workspace, or 0 when none is loaded. */
  revision(workspace: string): number {
    return this.#workspaces.get(workspace)?.revision ?? 0;
  }

  decide(request: DecisionRequest, now?: number): Decision {
    const workspace = typeof request?.workspace === 'string' ? request.workspace : '';
    return decide(this.#workspaces.get(workspace), request, now);
  }
}
