import pg from 'pg';

import type { Connection } from '../model/policy.js';

/** Result of a live request through a connection. Never includes the credential. */
export interface ConnectionTestResult {
  readonly ok: boolean;
  readonly status: number | null;
  readonly latency_ms: number;
  readonly error: string | null;
}

const TIMEOUT_MS = 5000;

/**
 * Makes one real request with the connection's credential: an HTTP GET of `url` for `http`
 * connections, `select 1` for `postgres` ones. The target host must be one of the connection's
 * allowed hosts, so a test can never send the credential anywhere else.
 */
export async function testConnection(
  connection: Connection,
  secret: string | null,
): Promise<ConnectionTestResult> {
  const started = performance.now();
  const finish = (ok: boolean, status: number | null, error: string | null) => ({
    ok,
    status,
    latency_ms: Math.round((performance.now() - started) * 10) / 10,
    error,
  });

  if (connection.url === undefined) return finish(false, null, 'the connection has no url to test');
  let url: URL;
  try {
    url = new URL(connection.url);
  } catch {
    return finish(false, null, 'the connection url is not a valid URL');
  }
  if (!connection.hosts.includes(url.host.toLowerCase())) {
    return finish(false, null, `host ${url.host} is not in the connection's hosts`);
  }

  try {
    if (connection.kind === 'http') {
      const status = await testHttp(url, connection, secret);
      return finish(status < 400, status, status < 400 ? null : `HTTP ${status}`);
    }
    if (connection.kind === 'postgres') {
      await testPostgres(url, connection, secret);
      return finish(true, null, null);
    }
    return finish(false, null, `testing ${connection.kind} connections is not supported`);
  } catch (error) {
    return finish(false, null, describe(error, secret));
  }
}

async function testHttp(url: URL, connection: Connection, secret: string | null): Promise<number> {
  const headers: Record<string, string> = {};
  const credential = connection.credential;
  if (credential && secret !== null) {
    if (credential.scheme === 'bearer') headers.authorization = `Bearer ${secret}`;
    if (credential.scheme === 'basic') {
      const pair = `${credential.username ?? ''}:${secret}`;
      headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
    }
    if (credential.scheme === 'header')
      headers[(credential.name ?? 'x-api-key').toLowerCase()] = secret;
    if (credential.scheme === 'query') url.searchParams.set(credential.name ?? 'api_key', secret);
  }
  // A redirect is reported, not followed: following it could carry the credential elsewhere.
  const response = await fetch(url, {
    headers,
    redirect: 'manual',
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  await response.body?.cancel();
  return response.status;
}

async function testPostgres(
  url: URL,
  connection: Connection,
  secret: string | null,
): Promise<void> {
  const client = new pg.Client({
    host: url.hostname,
    port: Number(url.port || 5432),
    database: url.pathname.slice(1) || undefined,
    user: connection.credential?.username ?? decodeURIComponent(url.username),
    ...(secret === null ? {} : { password: secret }),
    connectionTimeoutMillis: TIMEOUT_MS,
  });
  try {
    await client.connect();
    await client.query('select 1');
  } finally {
    await client.end().catch(() => {});
  }
}

function describe(error: unknown, secret: string | null): string {
  const text = error instanceof Error ? error.message : String(error);
  // A driver could echo what it was given; make sure the secret never comes back.
  return secret ? text.split(secret).join('[redacted]') : text;
}
