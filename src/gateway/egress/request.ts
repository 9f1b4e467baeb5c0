/**
 * The request side of the egress proxy: refusals with their reason codes, and the checks and
 * rewrites of what the caller sent (method, target, path, headers, body).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

import type { Reason } from '../../engine/reasons.js';
import type { Connection } from '../../model/policy.js';
import { normalisePath, PathError } from './paths.js';

/** Reason codes of a rejected request, besides the decision reasons. */
export type EgressRefusal =
  | 'invalid_request'
  | 'connection_not_found'
  | 'method_not_allowed'
  | 'path_not_allowed'
  | 'no_matching_route'
  | 'host_not_allowed'
  | 'address_not_allowed'
  | 'host_not_found'
  | 'credential_unavailable'
  | 'upstream_error'
  | 'upstream_timeout'
  | 'token_revoked'
  | Reason;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

// Hop-by-hop headers (RFC 9110, section 7.6.1) and headers that carry the caller's own
// credentials or would let it steer the upstream connection.
const DROPPED_REQUEST_HEADERS = new Set([
  ...['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding'],
  ...['upgrade', 'host', 'authorization', 'proxy-authorization', 'cookie', 'content-length'],
  ...['expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'],
  // Some servers take the method from these, which would get around read_only and methods.
  ...['x-http-method-override', 'x-http-method', 'x-method-override'],
  // Headers that identify the caller or rewrite the URL on some servers.
  ...['via', 'x-real-ip', 'true-client-ip', 'x-client-ip', 'x-original-url', 'x-rewrite-url'],
]);
export const DROPPED_RESPONSE_HEADERS = new Set([
  ...['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding'],
  ...['upgrade', 'set-cookie', 'proxy-authenticate'],
]);

/** A rejected request: the status and reason code sent to the caller and recorded. */
export class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: EgressRefusal,
    message: string,
    readonly decisionId: string | null = null,
  ) {
    super(message);
  }
}

export function decodeConnectionId(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new Refusal(400, 'invalid_request', 'the connection id has an invalid percent-encoding');
  }
}

export function checkMethod(connection: Connection, method: string): void {
  if (connection.read_only && !SAFE_METHODS.has(method)) {
    throw new Refusal(
      405,
      'method_not_allowed',
      `connection ${connection.id} is read-only; ${method} is not allowed`,
    );
  }
  if (connection.methods && !connection.methods.some((entry) => entry.toUpperCase() === method)) {
    throw new Refusal(
      405,
      'method_not_allowed',
      `${method} is not allowed on connection ${connection.id}`,
    );
  }
}

export function splitTarget(target: string): { pathname: string; search: string } {
  const question = target.indexOf('?');
  if (question === -1) return { pathname: target, search: '' };
  return { pathname: target.slice(0, question), search: target.slice(question) };
}

export function parsePath(pathname: string) {
  try {
    return normalisePath(pathname === '' ? '/' : pathname);
  } catch (error) {
    if (error instanceof PathError) throw new Refusal(400, 'invalid_request', error.message);
    throw error;
  }
}

export function joinPath(base: string, relative: string): string {
  if (base === '/') return relative;
  return relative === '/' ? base : `${base.replace(/\/$/, '')}${relative}`;
}

/** Parses an absolute-form request target (RFC 9112, section 3.2.2) of a plain HTTP request. */
export function parseAbsoluteTarget(raw: string): URL {
  if (/[\r\n\0\\]/.test(raw) || !/^http:\/\//i.test(raw)) {
    throw new Refusal(
      400,
      'invalid_request',
      'the forward proxy takes absolute http:// targets only',
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Refusal(400, 'invalid_request', 'the request target is not a valid URL');
  }
  // A user name in the target (http://api.example.com@evil.example/) names another host to
  // some parsers; it is rejected rather than interpreted.
  if (url.username !== '' || url.password !== '' || /^http:\/\/[^/?#]*@/i.test(raw)) {
    throw new Refusal(
      400,
      'invalid_request',
      'the request target must not contain user information',
    );
  }
  return url;
}

export function forwardedHeaders(
  incoming: IncomingHttpHeaders,
  injected: Record<string, string>,
): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || DROPPED_REQUEST_HEADERS.has(name) || name in injected) continue;
    if (name.startsWith('proxy-') || name.startsWith('x-forwarded-')) continue;
    headers[name] = value;
  }
  return { ...headers, ...injected };
}

/**
 * Reads a request body of at most `limit` bytes, which must arrive within `timeoutMs`, so a
 * caller cannot hold a decided request back for long.
 */
export async function readBody(
  request: IncomingMessage,
  limit: number,
  timeoutMs: number,
): Promise<Buffer> {
  const timer = setTimeout(() => {
    request.destroy(
      new Refusal(408, 'invalid_request', `the request body did not arrive within ${timeoutMs} ms`),
    );
  }, timeoutMs);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of request) {
      size += (chunk as Buffer).length;
      if (size > limit)
        throw new Refusal(413, 'invalid_request', `the request body exceeds ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}
