/** Redaction of values that reach the audit log from tool calls. */
import { createHash } from 'node:crypto';

import { canonicalizeJson } from '../audit/canonical.js';

const SECRET_KEY =
  /pass(word)?|secret|token|api[-_]?key|authorization|credential|private[-_]?key|cookie/i;

export const REDACTED = '[REDACTED]';

/** Hex SHA-256 of the canonical JSON (RFC 8785) of tool call arguments. */
export function hashArguments(args: unknown): string {
  return createHash('sha256')
    .update(canonicalizeJson(args ?? {}))
    .digest('hex');
}

/**
 * Copies a JSON value with the values of secret-looking keys replaced, and every occurrence of
 * the known secrets in strings replaced, by `[REDACTED]`.
 */
export function redactValue(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === 'string') return redactText(value, secrets);
  if (Array.isArray(value)) return value.map((item) => redactValue(item, secrets));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([key, entry]) => [
        key,
        SECRET_KEY.test(key) ? REDACTED : redactValue(entry, secrets),
      ]),
    );
  }
  return value;
}

/** Replaces every occurrence of the known secrets (of 4 characters or more) in `text`. */
export function redactText(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length >= 4) result = result.split(secret).join(REDACTED);
  }
  return result;
}
