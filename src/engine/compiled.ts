import type { ActionPattern, ResourcePattern } from '../model/patterns.js';
import type { Policy } from '../model/policy.js';

/** Action and resource patterns shared by grants, entitlements and guardrails. */
export interface CompiledRule {
  readonly id: string;
  readonly actions: readonly ActionPattern[];
  readonly resources: readonly ResourcePattern[];
}

/** A grant of an attached bundle, flattened with what the decision reports about it. */
export interface CompiledGrant extends CompiledRule {
  readonly bundle: string;
  readonly attachment: string;
  readonly connection: string | null;
  readonly identityAware: boolean;
  readonly approval: boolean;
  /** Epoch milliseconds after which the attachment grants nothing; Infinity when not time-boxed. */
  readonly until: number;
  /** Agents the attachment applies to; `null` for every agent. */
  readonly agents: ReadonlySet<string> | null;
}

/** A member's or group's personal right. */
export interface CompiledEntitlement extends CompiledRule {
  readonly connection: string | null;
}

export interface CompiledMember {
  readonly id: string;
  readonly entitlements: readonly CompiledEntitlement[];
  readonly entitlementsByAction: Map<string, readonly CompiledEntitlement[]>;
}

export type ScopeVisibility = 'workspace' | 'public' | 'private' | 'shared' | 'dm';

/** The rules of a scope whose action patterns match one action. */
export interface ActionCandidates {
  readonly grants: readonly CompiledGrant[];
  readonly guardrails: readonly CompiledRule[];
}

/** A workspace or channel scope, with its candidates precomputed. */
export interface CompiledScope {
  readonly scope: string;
  readonly channel: string | null;
  readonly visibility: ScopeVisibility;
  /** Appended to `agent:<id>` to name the identity: empty, or `/channel:<id>` when private. */
  readonly identitySuffix: string;
  /** Identity names per agent, built once so a decision allocates no string for them. */
  readonly identities: Map<string, string>;
  /** Members who may invoke the agent here; `null` for every workspace member. */
  readonly invokers: ReadonlySet<string> | null;
  readonly unattended: boolean;
  /** Channel attachments' grants first, then the inherited workspace ones: narrowest first. */
  readonly grants: readonly CompiledGrant[];
  readonly guardrails: readonly CompiledRule[];
  /** Grants and guardrails whose action patterns match an action, memoized per action. */
  readonly byAction: Map<string, ActionCandidates>;
  /** Memory compartments the scope may read and write. */
  readonly memoryRead: ReadonlySet<string>;
  readonly memoryWrite: ReadonlySet<string>;
}

/** A workspace's policy revision compiled into in-memory indexes: a decision does no I/O. */
export interface CompiledWorkspace {
  readonly id: string;
  /** The validated policy this was compiled from. */
  readonly policy: Policy;
  readonly revision: number;
  readonly caseInsensitiveTypes: ReadonlySet<string>;
  readonly agents: ReadonlyMap<string, 'active' | 'disabled'>;
  /** Per agent, the identities an admin has disabled (the kill switch for one identity). */
  readonly disabledIdentities: ReadonlyMap<string, ReadonlySet<string>>;
  readonly members: ReadonlyMap<string, CompiledMember>;
  readonly workspaceScope: CompiledScope;
  readonly channels: ReadonlyMap<string, CompiledScope>;
  readonly dmsEnabled: boolean;
  readonly dmsUnattended: boolean;
  readonly dmGuardrails: readonly CompiledRule[];
  readonly dmGuardrailsByAction: Map<string, readonly CompiledRule[]>;
  /** Concrete resource ids and actions that the search endpoints enumerate. */
  readonly knownResources: readonly string[];
  readonly knownActions: readonly string[];
}

/** Cache entries per scope and action; beyond it candidates are computed on every call. */
export const ACTION_CACHE_LIMIT = 4096;
