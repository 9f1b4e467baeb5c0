/**
 * Download of a federated issuer's JWK set from an administrator-configured `jwks_uri`. Tokens
 * never choose the URL: verifiers take the resulting set as a local value.
 */
import type { JSONWebKeySet, JWK } from 'jose';

import { TokenError } from './errors.js';

export interface FetchJwksOptions {
  /** Time limit for the whole request, body included, in milliseconds. @default 5000 */
  timeoutMs?: number;
  /** Maximum size of the response body, in bytes. @default 65536 */
  maxBytes?: number;
}

/**
 * Fetches and validates a JWK set. `url` must be `https:`, or `http:` on 127.0.0.1 for local
 * issuers. Redirects are not followed.
 *
 * Throws a TypeError for a disallowed URL or invalid options, ERR_JWKS_FETCH when the request
 * fails, times out, returns a status other than 200 or a body over `maxBytes`, and
 * ERR_JWKS_INVALID when the body is not a set of public JWKs.
 */
export async function fetchJwks(
  url: string | URL,
  options: FetchJwksOptions = {},
): Promise<JSONWebKeySet> {
  const { timeoutMs = 5000, maxBytes = 65536 } = options;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new TypeError('timeoutMs must be a positive whole number of milliseconds');
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new TypeError('maxBytes must be a positive whole number of bytes');
  }
  const target = checkUrl(url);
  // The query string is left out of messages because it may carry a secret.
  const name = `${target.origin}${target.pathname}`;

  let body: string;
  try {
    body = await download(target, name, timeoutMs, maxBytes);
  } catch (error) {
    if (error instanceof TokenError) throw error;
    const reason =
      error instanceof Error && error.name === 'TimeoutError'
        ? `timed out after ${timeoutMs} ms`
        : 'the request failed';
    throw new TokenError('ERR_JWKS_FETCH', `failed to fetch the JWK set from ${name}: ${reason}`, {
      cause: error,
    });
  }
  return parseJwks(body, name);
}

function checkUrl(url: string | URL): URL {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new TypeError('invalid jwks_uri: expected an absolute URL');
  }
  const loopback = target.protocol === 'http:' && target.hostname === '127.0.0.1';
  if (target.protocol !== 'https:' && !loopback) {
    throw new TypeError(`invalid jwks_uri ${target.origin}: use https, or http only on 127.0.0.1`);
  }
  return target;
}

async function download(url: URL, name: string, timeoutMs: number, maxBytes: number) {
  // The signal also aborts reading the body, so a slow body counts against the time limit.
  const response = await fetch(url, {
    redirect: 'error',
    headers: { accept: 'application/jwk-set+json, application/json' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new TokenError(
      'ERR_JWKS_FETCH',
      `failed to fetch the JWK set from ${name}: HTTP status ${response.status}, expected 200`,
    );
  }

  const tooLarge = new TokenError(
    'ERR_JWKS_FETCH',
    `failed to fetch the JWK set from ${name}: the body is larger than ${maxBytes} bytes`,
  );
  if (Number(response.headers.get('content-length') ?? 0) > maxBytes) {
    await response.body?.cancel();
    throw tooLarge;
  }
  return await readLimited(response, maxBytes, tooLarge);
}

/**
 * Reads the body as UTF-8. Leaving the loop with a throw cancels the stream, so reading stops
 * once the body exceeds `maxBytes`.
 */
async function readLimited(response: Response, maxBytes: number, tooLarge: Error) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body === null) return '';
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJwks(body: string, name: string): JSONWebKeySet {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    value = undefined;
  }
  const keys = (value as { keys?: unknown } | undefined)?.keys;
  if (typeof value !== 'object' || value === null || !Array.isArray(keys)) {
    throw new TokenError(
      'ERR_JWKS_INVALID',
      `invalid JWK set from ${name}: expected a JSON object with a keys array`,
    );
  }
  for (const [index, key] of keys.entries()) {
    const jwk = key as JWK | null;
    const valid = typeof jwk === 'object' && jwk !== null && typeof jwk.kty === 'string';
    if (!valid || jwk.kty === 'oct' || 'd' in jwk) {
      throw new TokenError(
        'ERR_JWKS_INVALID',
        `invalid JWK set from ${name}: key ${index} is not a public JWK`,
      );
    }
  }
  return { keys: keys as JWK[] };
}
