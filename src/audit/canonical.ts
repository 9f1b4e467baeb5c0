import type { AuditEvent } from './event.js';

/** Maximum nesting depth of a canonicalized value. Deeper values are rejected as likely cycles. */
const MAX_DEPTH = 64;

/**
 * Serializes a JSON value with the JSON Canonicalization Scheme (RFC 8785): object keys sorted
 * by UTF-16 code units, no whitespace, and ECMAScript number and string serialization.
 *
 * Undefined object members are skipped and undefined array items become null, as in
 * JSON.stringify. Throws a TypeError naming `path` for values JSON cannot represent
 * (non-finite numbers, bigints, functions, symbols) and for nesting deeper than 64 levels.
 */
export function canonicalizeJson(value: unknown, path = 'value'): string {
  return serialize(value, path, 0);
}

function serialize(value: unknown, path: string, depth: number): string {
  if (value === null) return 'null';

  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) {
        throw new TypeError(`${path} is ${value}, which JSON cannot represent`);
      }
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`${path} is a ${typeof value}, which JSON cannot represent`);
  }

  if (depth >= MAX_DEPTH) {
    throw new TypeError(`${path} is nested deeper than ${MAX_DEPTH} levels or contains a cycle`);
  }
  if (Array.isArray(value)) {
    return serializeArray(value, path, depth);
  }
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    return serialize(toJSON.call(value), path, depth + 1);
  }
  return serializeObject(value as Record<string, unknown>, path, depth);
}

function serializeArray(items: unknown[], path: string, depth: number): string {
  const parts: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    parts.push(item === undefined ? 'null' : serialize(item, `${path}[${i}]`, depth + 1));
  }
  return `[${parts.join(',')}]`;
}

function serializeObject(object: Record<string, unknown>, path: string, depth: number): string {
  // Array.prototype.sort compares UTF-16 code units, the order RFC 8785 section 3.2.3 requires.
  const keys = Object.keys(object).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const member = object[key];
    if (member === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${serialize(member, `${path}.${key}`, depth + 1)}`);
  }
  return `{${parts.join(',')}}`;
}

/**
 * Serializes an audit event with RFC 8785, faster than {@link canonicalizeJson} because the
 * member order is written out. The event must have exactly the AuditEvent fields, as
 * `normalizeAuditRecord` returns them. A property test checks the output against the
 * json-canonicalize package.
 */
export function canonicalizeEvent(event: AuditEvent): string {
  const detail = event.detail === null ? 'null' : canonicalizeJson(event.detail, 'detail');
  return (
    `{"action":${nullableString(event.action)}` +
    `,"actor":{"id":${JSON.stringify(event.actor.id)},"type":${JSON.stringify(event.actor.type)}}` +
    `,"bundle":${nullableString(event.bundle)}` +
    `,"connection":${nullableString(event.connection)}` +
    `,"decision":${nullableString(event.decision)}` +
    `,"decision_id":${nullableString(event.decision_id)}` +
    `,"detail":${detail}` +
    `,"grant":${nullableString(event.grant)}` +
    `,"identity":${nullableString(event.identity)}` +
    `,"invoker":${nullableString(event.invoker)}` +
    `,"prev":${JSON.stringify(event.prev)}` +
    `,"reason":${nullableString(event.reason)}` +
    `,"request_id":${nullableString(event.request_id)}` +
    `,"resource":${nullableString(event.resource)}` +
    `,"revision":${event.revision === null ? 'null' : serialize(event.revision, 'revision', 0)}` +
    `,"scope":${nullableString(event.scope)}` +
    `,"seq":${serialize(event.seq, 'seq', 0)}` +
    `,"time":${JSON.stringify(event.time)}` +
    `,"type":${JSON.stringify(event.type)}` +
    `,"workspace":${nullableString(event.workspace)}}`
  );
}

function nullableString(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}
