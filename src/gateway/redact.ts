/** Redaction of values that reach the audit log from tool calls. */
import { createHash } from 'node:crypto';

import { canonicalizeJson } from '../audit/canonical.js';

const SECRET_KEY =
  /pass(word)?|secret|token|api[-_]?key|authorization|credential|private[-_]?key|cookie/i;

export const REDACTED = '[REDACTED]';

/** Replaces values nested deeper than this in recorded arguments. */
const MAX_RECORDED_DEPTH = 16;

export const TRUNCATED = '[TRUNCATED]';

/**
 * Hex SHA-256 of tool call arguments: of their canonical JSON (RFC 8785), or of their plain
 * JSON when they cannot be canonicalized (nested deeper than 64 levels).
 */
export function hashArguments(args: unknown): string {
  let text: string;
  try {
    text = canonicalizeJson(args ?? {});
  } catch {
    text = JSON.stringify(args ?? {});
  }
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Copies a JSON value for the audit log, with the values of secret-looking keys and every
 * occurrence of the known secrets replaced by `[REDACTED]`, and values nested deeper than 16
 * levels replaced by `[TRUNCATED]`.
 */
export function redactValue(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return redactText(value, secrets);
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_RECORDED_DEPTH) return TRUNCATED;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, secrets, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([key, entry]) => [
      key,
      SECRET_KEY.test(key) ? REDACTED : redactValue(entry, secrets, depth + 1),
    ]),
  );
}

/**
 * Returns a JSON value with every occurrence of the known secrets replaced by `[REDACTED]`, at
 * any depth and nothing else changed. Works on the JSON text, where a secret appears in its
 * escaped form.
 */
export function scrubSecrets<T>(value: T, secrets: readonly string[]): T {
  const text = JSON.stringify(value);
  const escaped = secrets
    .filter((secret) => secret.length >= 4)
    .map((secret) => JSON.stringify(secret).slice(1, -1));
  const scrubbed = redactText(text, escaped);
  return scrubbed === text ? value : (JSON.parse(scrubbed) as T);
}

/** Replaces every occurrence of the known secrets (of 4 characters or more) in `text`. */
export function redactText(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length >= 4) result = result.split(secret).join(REDACTED);
  }
  return result;
}
