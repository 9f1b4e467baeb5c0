import { canonicalizeJson } from './canonical.js';

/** The principal that performed the audited action. */
export interface AuditActor {
  type: 'agent' | 'member' | 'api_key' | 'cli' | 'system';
  id: string;
}

/**
 * An audit record as callers submit it. Field names are snake_case because the stored and
 * exported JSON is a stable API. Absent values are null.
 */
export interface AuditRecord {
  /** Dot-separated event type, for example `decision`, `policy.apply` or `auth.failure`. */
  type: string;
  workspace: string | null;
  actor: AuditActor;
  /** Principal the agent acted as. */
  identity: string | null;
  invoker: string | null;
  /** `workspace`, `channel:<id>` or `dm:<member>`. */
  scope: string | null;
  action: string | null;
  resource: string | null;
  decision: 'allow' | 'deny' | null;
  reason: string | null;
  bundle: string | null;
  grant: string | null;
  connection: string | null;
  revision: number | null;
  decision_id: string | null;
  request_id: string | null;
  /** Small JSON object with event-specific fields. Never secrets. */
  detail: Record<string, unknown> | null;
}

/** A record as stored in the chain. */
export interface AuditEvent extends AuditRecord {
  /** Position in the chain, from 1 without gaps. */
  seq: number;
  /** ISO 8601 UTC time with milliseconds, taken when the record was appended. */
  time: string;
  /** Hex SHA-256 of the previous event's canonical JSON, {@link GENESIS_HASH} for seq 1. */
  prev: string;
}

/** An event with its own chain hash, as read back from storage. */
export interface StoredAuditEvent extends AuditEvent {
  hash: string;
}

/** A record with the nullable fields optional, as `AuditLog.append` accepts it. */
export type AuditRecordInput = Pick<AuditRecord, 'type' | 'actor'> &
  Partial<Omit<AuditRecord, 'type' | 'actor'>>;

/** The `prev` of the first event. */
export const GENESIS_HASH = '0'.repeat(64);

/** Maximum size of `detail` as canonical JSON, in UTF-16 code units. */
export const MAX_DETAIL_LENGTH = 64 * 1024;

const ACTOR_TYPES: ReadonlySet<string> = new Set(['agent', 'member', 'api_key', 'cli', 'system']);

const TYPE_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

const STRING_FIELDS = [
  'workspace',
  'identity',
  'invoker',
  'scope',
  'action',
  'resource',
  'reason',
  'bundle',
  'grant',
  'connection',
  'decision_id',
  'request_id',
] as const;

/**
 * Checks a record and returns a copy with exactly the AuditRecord fields, absent ones null.
 * Throws a TypeError naming the first invalid field, because a bad record is a caller bug.
 */
export function normalizeAuditRecord(input: AuditRecordInput): AuditRecord {
  if (typeof input !== 'object' || input === null) {
    throw new TypeError('audit record must be an object');
  }
  checkType(input.type);
  const actor = checkActor(input.actor);

  const strings = {} as Record<(typeof STRING_FIELDS)[number], string | null>;
  for (const field of STRING_FIELDS) {
    strings[field] = optionalString(input[field], field);
  }

  return {
    type: input.type,
    workspace: strings.workspace,
    actor,
    identity: strings.identity,
    invoker: strings.invoker,
    scope: strings.scope,
    action: strings.action,
    resource: strings.resource,
    decision: checkDecision(input.decision),
    reason: strings.reason,
    bundle: strings.bundle,
    grant: strings.grant,
    connection: strings.connection,
    revision: checkRevision(input.revision),
    decision_id: strings.decision_id,
    request_id: strings.request_id,
    detail: checkDetail(input.detail),
  };
}

function checkType(type: unknown): void {
  if (typeof type !== 'string' || type.length > 100 || !TYPE_PATTERN.test(type)) {
    throw new TypeError(
      `audit record type ${JSON.stringify(type)} is invalid: expected dot-separated ` +
        'lowercase words such as policy.apply',
    );
  }
}

function checkActor(actor: unknown): AuditActor {
  const candidate = actor as Partial<AuditActor> | null | undefined;
  if (typeof candidate?.type !== 'string' || !ACTOR_TYPES.has(candidate.type)) {
    throw new TypeError(`audit record actor.type must be one of ${[...ACTOR_TYPES].join(', ')}`);
  }
  if (typeof candidate.id !== 'string' || candidate.id === '') {
    throw new TypeError('audit record actor.id must be a non-empty string');
  }
  return { type: candidate.type, id: candidate.id };
}

function optionalString(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') {
    throw new TypeError(`audit record field ${field} must be a string or null`);
  }
  return value;
}

function checkDecision(value: unknown): 'allow' | 'deny' | null {
  if (value === undefined || value === null) return null;
  if (value !== 'allow' && value !== 'deny') {
    throw new TypeError('audit record field decision must be allow, deny or null');
  }
  return value;
}

function checkRevision(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError('audit record field revision must be a non-negative integer or null');
  }
  return value;
}

/**
 * Copies a small object of strings, finite numbers, booleans and nulls without the JSON round
 * trip, which is most details. Returns null for anything else, which takes the full path.
 */
function copyFlat(value: Record<string, unknown>): Record<string, unknown> | null {
  const copy: Record<string, unknown> = {};
  let size = 2;
  for (const key of Object.keys(value)) {
    const member = value[key];
    const kind = typeof member;
    if (kind === 'string') size += (member as string).length;
    else if (kind === 'number' && !Number.isFinite(member)) return null;
    else if (member !== null && kind !== 'number' && kind !== 'boolean') return null;
    size += key.length + 24;
    copy[key] = member;
  }
  // Strings can grow when escaped, so only details far below the limit take this path.
  return size * 6 < MAX_DETAIL_LENGTH ? copy : null;
}

/** Copies `detail` through JSON, so later changes by the caller cannot alter the event. */
function checkDetail(value: unknown): Record<string, unknown> | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError('audit record field detail must be a JSON object or null');
  }

  const flat = copyFlat(value as Record<string, unknown>);
  if (flat !== null) return flat;

  const text = canonicalizeJson(value, 'detail');
  if (text.length > MAX_DETAIL_LENGTH) {
    throw new TypeError(
      `audit record field detail is ${text.length} characters as JSON, over the ` +
        `maximum of ${MAX_DETAIL_LENGTH}`,
    );
  }
  return JSON.parse(text) as Record<string, unknown>;
}
