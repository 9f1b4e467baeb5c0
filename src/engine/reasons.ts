/**
 * Reason codes of a decision. They are part of the API: clients branch on them, so a code is
 * never renamed or reused for another meaning.
 */
export const REASONS = [
  'granted',
  'agent_unknown',
  'agent_disabled',
  'scope_unknown',
  'channel_excluded',
  'identity_disabled',
  'dms_disabled',
  'invoker_not_permitted',
  'invoker_required',
  'invoker_lacks_permission',
  'forbidden_by_guardrail',
  'approval_required',
  'memory_compartment',
  'no_matching_grant',
  'invalid_request',
  'evaluation_error',
  'audit_unavailable',
] as const;

export type Reason = (typeof REASONS)[number];
