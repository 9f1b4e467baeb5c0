import type { Policy } from '../../model/policy.js';

type Entry = { id: string };

/** The policy sections the admin API edits entry by entry, keyed by their URL segment. */
export const COLLECTIONS = {
  groups: (policy: Policy) => policy.groups as Entry[],
  members: (policy: Policy) => policy.members as Entry[],
  agents: (policy: Policy) => policy.agents as Entry[],
  connections: (policy: Policy) => policy.connections as Entry[],
  bundles: (policy: Policy) => policy.bundles as Entry[],
  channels: (policy: Policy) => policy.scopes.channels as Entry[],
  guardrails: (policy: Policy) => policy.guardrails as Entry[],
} as const;

export type CollectionName = keyof typeof COLLECTIONS;
export const COLLECTION_NAMES = Object.keys(COLLECTIONS) as CollectionName[];

/** Returns a deep copy of the policy that edits can change freely. */
export function clonePolicy(policy: Policy): Policy {
  return structuredClone(policy);
}
