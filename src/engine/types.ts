import type { Reason } from './reasons.js';

/** A question to the engine: may this agent, in this scope, do this action on this resource? */
export interface DecisionRequest {
  readonly workspace: string;
  readonly agent: string;
  /** `undefined` for the workspace scope, a channel id, or `dm:<member id>`. */
  readonly channel?: string | undefined;
  /** The member who asked, when there is one. */
  readonly invoker?: string | undefined;
  readonly action: string;
  readonly resource: string;
}

/** The engine's decision, with what it was based on. */
export interface Decision {
  readonly allowed: boolean;
  readonly reason: Reason;
  /** Human-readable detail for `invalid_request` and `evaluation_error`; never contains secrets. */
  readonly detail: string | null;
  readonly decisionId: string;
  /** Policy revision the decision was made under; 0 when the workspace is not loaded. */
  readonly revision: number;
  readonly workspace: string;
  readonly agent: string;
  /** `workspace`, `channel:<id>` or `dm:<member id>`. */
  readonly scope: string;
  /** Principal the agent acts as in the scope, once the scope is resolved. */
  readonly identity: string | null;
  readonly invoker: string | null;
  readonly action: string;
  readonly resource: string;
  readonly bundle: string | null;
  /** `workspace/<bundle>` or `channel:<id>/<bundle>`. */
  readonly attachment: string | null;
  readonly grant: string | null;
  readonly connection: string | null;
  readonly guardrail: string | null;
}
