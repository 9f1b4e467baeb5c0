/**
 * Removal of a credential from upstream responses, so an API that echoes the request (its
 * headers, a debug page) cannot hand the injected credential to the agent.
 */
import { Transform } from 'node:stream';

import { REDACTED } from '../redact.js';

/**
 * A stream that replaces every occurrence of `secret` with `[REDACTED]`, including one split
 * across chunks: it holds back the last `secret.length - 1` bytes until more arrive.
 */
export function scrubStream(secret: string): Transform {
  const needle = Buffer.from(secret);
  const replacement = Buffer.from(REDACTED);
  let pending: Buffer = Buffer.alloc(0);

  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const scrubbed = replaceAll(Buffer.concat([pending, chunk]), needle, replacement);
      const keep = Math.min(needle.length - 1, scrubbed.length);
      pending = scrubbed.subarray(scrubbed.length - keep);
      done(null, scrubbed.subarray(0, scrubbed.length - keep));
    },
    flush(done) {
      done(null, pending);
    },
  });
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
