/**
 * Removal of a credential from upstream responses, so an API that echoes the request (its
 * headers, a debug page) cannot hand the injected credential to the agent.
 */
import { Transform } from 'node:stream';

import { REDACTED } from '../redact.js';

/**
 * Returns a stream that replaces every occurrence of each of `secrets` with `[REDACTED]`,
 * including one split across chunks: it holds back the last bytes, one fewer than the longest
 * secret, until more arrive.
 */
export function scrubStream(secrets: readonly string[]): Transform {
  const needles = secrets.map((secret) => Buffer.from(secret));
  const replacement = Buffer.from(REDACTED);
  const longest = Math.max(0, ...needles.map((needle) => needle.length));
  let pending: Buffer = Buffer.alloc(0);

  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let scrubbed: Buffer = Buffer.concat([pending, chunk]);
      for (const needle of needles) scrubbed = replaceAll(scrubbed, needle, replacement);
      const keep = Math.min(Math.max(longest - 1, 0), scrubbed.length);
      pending = scrubbed.subarray(scrubbed.length - keep);
      done(null, scrubbed.subarray(0, scrubbed.length - keep));
    },
    flush(done) {
      done(null, pending);
    },
  });
}

/** Replaces each of `secrets` in a header value. */
export function scrubHeader(
  value: string | string[],
  secrets: readonly string[],
): string | string[] {
  const scrub = (text: string) =>
    secrets.reduce((result, secret) => result.split(secret).join(REDACTED), text);
  return Array.isArray(value) ? value.map(scrub) : scrub(value);
}

function replaceAll(buffer: Buffer, needle: Buffer, replacement: Buffer): Buffer {
  let index = buffer.indexOf(needle);
  if (index === -1) return buffer;
  const parts: Buffer[] = [];
  let start = 0;
  while (index !== -1) {
    parts.push(buffer.subarray(start, index), replacement);
    start = index + needle.length;
    index = buffer.indexOf(needle, start);
  }
  parts.push(buffer.subarray(start));
  return Buffer.concat(parts);
}
