/** Shared pieces of the token suites: a frozen clock, forged-token builders and a canary. */
import type { KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { type JWTPayload, SignJWT } from 'jose';
import { expect } from 'vitest';

import { TokenError, type TokenErrorCode } from '../../src/tokens/errors.js';

/** Frozen test time: 2030-03-17T17:46:40Z, in seconds since the epoch. */
export const T0 = 1_900_000_000;

export const ISSUER = 'https://deputy.example.test';
export const AUDIENCE = 'https://mcp.example.test/github';

/** Returns `seconds` since the epoch as a Date. */
export function at(seconds: number): Date {
  return new Date(seconds * 1000);
}

/** Encodes a JSON value as one base64url segment. */
export function segment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Builds a compact JWS from a header, a payload and raw signature bytes. */
export function compact(header: object, payload: object, signature = new Uint8Array()): string {
  return `${segment(header)}.${segment(payload)}.${Buffer.from(signature).toString('base64url')}`;
}

/** Signs `payload` as given, with the given header, using jose. */
export async function signWith(
  key: KeyObject | Uint8Array,
  header: { alg: string } & Record<string, unknown>,
  payload: JWTPayload,
): Promise<string> {
  return await new SignJWT(payload).setProtectedHeader(header).sign(key);
}

/** Runs `verify`, asserts it rejects with a TokenError of `code`, and returns the error. */
export async function expectRejected(
  verify: () => Promise<unknown>,
  code: TokenErrorCode,
): Promise<TokenError> {
  let caught: unknown;
  try {
    await verify();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(TokenError);
  expect((caught as TokenError).code).toBe(code);
  return caught as TokenError;
}

/** An HTTP server on 127.0.0.1 that counts every request it receives and responds 404. */
export interface Canary {
  readonly url: string;
  requests(): number;
  close(): Promise<void>;
}

export async function startCanary(): Promise<Canary> {
  let count = 0;
  const server = createServer((_request, response) => {
    count += 1;
    response.writeHead(404).end();
  });
  const url = await listen(server);
  return { url, requests: () => count, close: () => closeServer(server) };
}

/** Starts `server` on 127.0.0.1, on a port the system picks, and returns its base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
