/**
 * A Deputy whose HTTP API listens on 127.0.0.1, driven as an agent runtime drives it: through
 * oauth4webapi for the OAuth endpoints, plain fetch for the admin and AuthZEN APIs, and jose to
 * verify issued tokens against the published JWK set.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createRemoteJWKSet, exportJWK, type JWK, type JWTPayload, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import pino from 'pino';
import { expect } from 'vitest';

import { buildServer } from '../../src/api/server.js';
import { Deputy } from '../../src/deputy.js';
import type { Policy } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';
import { readAcme, SETUP_CALL } from '../api/harness.js';

export { auditEventsAfter, lastAuditSeq, readAcme } from '../api/harness.js';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const GITHUB_MCP = 'https://mcp.acme.example/github';
export const WAREHOUSE_API = 'https://warehouse.acme.example/api';

/** Lets oauth4webapi use plain http, which it rejects by default. Every server here is loopback. */
export const INSECURE = { [oauth.allowInsecureRequests]: true } as const;

type App = Awaited<ReturnType<typeof buildServer>>;

/** A runtime client as oauth4webapi takes it: its metadata and how it authenticates. */
export interface Runtime {
  client: oauth.Client;
  auth: oauth.ClientAuth;
  method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** The client secret, for secret-based clients; `null` for `private_key_jwt`. */
  secret: string | null;
  /** The private key and its `kid`, for `private_key_jwt` clients. */
  key: oauth.PrivateKey | null;
}

export interface OAuthHarness {
  deputy: Deputy;
  app: App;
  /** Deputy's issuer identifier: `http://127.0.0.1:<port>`, without a trailing slash. */
  issuer: string;
  /** Authorization server metadata, as discovered by oauth4webapi. */
  as: oauth.AuthorizationServer;
  keys: { admin: string; pep: string; auditor: string };
  keyIds: { admin: string; pep: string; auditor: string };
  /** Every HTTP response body this harness's helpers received, for leak checks. */
  bodies: string[];
  /** How to open another Deputy process on the same database and master key. */
  storage: { database: string; dataDir: string; env: Record<string, string> };
  close(): Promise<void>;
}

export interface OAuthHarnessOptions {
  /** Policies applied as revision 1 of their workspaces. @default the acme example */
  policies?: Policy[];
}

/** Returns a policy after checking it the way `deputy apply` does, so a typo fails loudly. */
export function validated(policy: Policy): Policy {
  const parsed = parsePolicy(policy);
  if (!parsed.ok) {
    throw new Error(parsed.issues.map((issue) => issue.message).join('; '));
  }
  return parsed.policy;
}

/** Returns the acme example with a second active agent `scribe` and a disabled agent `archivist`. */
export function acmeWithAgents(): Policy {
  const policy = readAcme();
  policy.agents.push({ id: 'scribe', status: 'active', disabled_identities: [] });
  policy.agents.push({ id: 'archivist', status: 'disabled', disabled_identities: [] });
  return validated(policy);
}

/** Returns the acme example under another workspace id, with the same agents and audiences. */
export function acmeAs(workspace: string): Policy {
  const policy = acmeWithAgents();
  policy.workspace.id = workspace;
  return validated(policy);
}

export async function startOAuthHarness(options: OAuthHarnessOptions = {}): Promise<OAuthHarness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'deputy-oauth-'));
  const logger = pino({ level: 'silent' });
  const storage = {
    database: join(dataDir, 'deputy.db'),
    dataDir,
    env: { DEPUTY_MASTER_KEY: randomBytes(32).toString('base64') },
  };
  const deputy = await Deputy.open({ ...storage, logger, refreshIntervalMs: 0 });
  for (const policy of options.policies ?? [acmeWithAgents()]) {
    await deputy.apply(policy, 0, 'test', SETUP_CALL);
  }
  const admin = await deputy.createKey('admin', 'test admin', SETUP_CALL);
  const pep = await deputy.createKey('pep', 'test pep', SETUP_CALL);
  const auditor = await deputy.createKey('auditor', 'test auditor', SETUP_CALL);

  const { app, issuer } = await listen(deputy, logger);
  const discovered = await oauth.discoveryRequest(new URL(issuer), {
    ...INSECURE,
    algorithm: 'oauth2',
  });
  const as = await oauth.processDiscoveryResponse(new URL(issuer), discovered);

  return {
    deputy,
    app,
    issuer,
    as,
    keys: { admin: admin.key, pep: pep.key, auditor: auditor.key },
    keyIds: { admin: admin.id, pep: pep.id, auditor: auditor.id },
    bodies: [],
    storage,
    async close() {
      await app.close();
      await deputy.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Builds the server for a port learned from a throw-away listener, then listens on it. The
 * issuer must be known before the routes are built, so the port is picked first. Another
 * process could take it in between, so a busy port is retried with a new one.
 */
async function listen(deputy: Deputy, logger: pino.Logger): Promise<{ app: App; issuer: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const app = await buildServer({ deputy, logger, publicUrl: issuer });
    try {
      await app.listen({ host: '127.0.0.1', port });
      return { app, issuer };
    } catch (error) {
      await app.close();
      if ((error as { code?: unknown }).code !== 'EADDRINUSE' || attempt === 3) throw error;
    }
  }
}

/** A second Deputy process on the harness's database, serving the same issuer elsewhere. */
export interface Peer {
  url: string;
  deputy: Deputy;
  close(): Promise<void>;
}

/** Starts a peer that reloads policy, keys and revocations every `refreshIntervalMs`. */
export async function startPeer(harness: OAuthHarness, refreshIntervalMs: number): Promise<Peer> {
  const logger = pino({ level: 'silent' });
  const deputy = await Deputy.open({ ...harness.storage, logger, refreshIntervalMs });
  const app = await buildServer({ deputy, logger, publicUrl: harness.issuer });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    deputy,
    async close() {
      await app.close();
      await deputy.close();
    },
  };
}

async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Sends a JSON request to Deputy with an API key and returns the status and parsed body. */
export async function callApi(
  harness: OAuthHarness,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  key: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${harness.issuer}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  harness.bodies.push(text);
  return { status: response.status, body: text === '' ? {} : JSON.parse(text) };
}

/**
 * Registers a runtime client for `agent` through the admin API. A `private_key_jwt` client
 * gets a fresh ES256 key pair whose public half, with `kid`, is the registered JWK set.
 */
export async function registerClient(
  harness: OAuthHarness,
  agent: string,
  method: Runtime['method'],
  workspace = 'acme',
): Promise<Runtime> {
  let key: oauth.PrivateKey | null = null;
  let jwks: { keys: JWK[] } | undefined;
  if (method === 'private_key_jwt') {
    const pair = await oauth.generateKeyPair('ES256');
    const kid = `runtime-${randomBytes(4).toString('hex')}`;
    key = { key: pair.privateKey, kid };
    jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' }] };
  }

  const created = await callApi(
    harness,
    'POST',
    `/admin/v1/workspaces/${workspace}/agents/${agent}/clients`,
    harness.keys.admin,
    { auth_method: method, label: `${agent} runtime`, ...(jwks ? { jwks } : {}) },
  );
  expect(created.status).toBe(201);
  const clientId = created.body.client_id as string;
  const secret = (created.body.client_secret as string | undefined) ?? null;
  return {
    client: { client_id: clientId, token_endpoint_auth_method: method },
    auth: authFor(method, secret, key),
    method,
    secret,
    key,
  };
}

function authFor(
  method: Runtime['method'],
  secret: string | null,
  key: oauth.PrivateKey | null,
): oauth.ClientAuth {
  if (method === 'client_secret_basic') return oauth.ClientSecretBasic(secret as string);
  if (method === 'client_secret_post') return oauth.ClientSecretPost(secret as string);
  return oauth.PrivateKeyJwt(key as oauth.PrivateKey);
}

/** A status and parsed JSON body read from a token, introspection or revocation response. */
export interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** Reads a response without oauth4webapi's processing, to assert exact error bodies. */
export async function readReply(harness: OAuthHarness, response: Response): Promise<Reply> {
  const text = await response.text();
  harness.bodies.push(text);
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

/** Parameters of the client credentials grant: `channel`, `invoker` and `thread`. */
export type IdentityParameters = Record<string, string> | string[][];

export async function requestIdentityToken(
  harness: OAuthHarness,
  runtime: Runtime,
  parameters: IdentityParameters,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const response = await oauth.clientCredentialsGrantRequest(
    harness.as,
    runtime.client,
    runtime.auth,
    parameters,
    { ...INSECURE, headers },
  );
  return await readReply(harness, response);
}

/** Requests an identity token that must be issued, and returns it. */
export async function identityToken(
  harness: OAuthHarness,
  runtime: Runtime,
  parameters: IdentityParameters,
): Promise<string> {
  const response = await oauth.clientCredentialsGrantRequest(
    harness.as,
    runtime.client,
    runtime.auth,
    parameters,
    INSECURE,
  );
  harness.bodies.push(await response.clone().text());
  const result = await oauth.processClientCredentialsResponse(harness.as, runtime.client, response);
  return result.access_token;
}

/**
 * Sends a token exchange (RFC 8693) for `subjectToken` with extra `parameters`. The subject
 * token type is the JWT type unless `parameters` names one.
 */
export async function requestExchange(
  harness: OAuthHarness,
  runtime: Runtime,
  subjectToken: string,
  parameters: Record<string, string> | string[][],
  headers: Record<string, string> = {},
): Promise<Reply> {
  const pairs = Array.isArray(parameters) ? parameters : Object.entries(parameters);
  const typed = pairs.some(([name]) => name === 'subject_token_type');
  const response = await oauth.genericTokenEndpointRequest(
    harness.as,
    runtime.client,
    runtime.auth,
    TOKEN_EXCHANGE,
    [
      ['subject_token', subjectToken],
      ...(typed ? [] : [['subject_token_type', TOKEN_TYPE_JWT]]),
      ...pairs,
    ],
    { ...INSECURE, headers },
  );
  return await readReply(harness, response);
}

/** Exchanges `subjectToken` for an access token that must be issued, and returns it. */
export async function accessToken(
  harness: OAuthHarness,
  runtime: Runtime,
  subjectToken: string,
  parameters: Record<string, string>,
): Promise<string> {
  const reply = await requestExchange(harness, runtime, subjectToken, parameters);
  expect(reply.body).toMatchObject({ token_type: 'Bearer' });
  expect(reply.status).toBe(200);
  return reply.body.access_token as string;
}

/** Introspects `token` as `runtime` (RFC 7662) and returns the whole response body. */
export async function introspect(
  harness: OAuthHarness,
  runtime: Runtime,
  token: string,
): Promise<Reply> {
  const response = await oauth.introspectionRequest(
    harness.as,
    runtime.client,
    runtime.auth,
    token,
    INSECURE,
  );
  return await readReply(harness, response);
}

/** Revokes `token` as `runtime` (RFC 7009). */
export async function revoke(
  harness: OAuthHarness,
  runtime: Runtime,
  token: string,
): Promise<Reply> {
  const response = await oauth.revocationRequest(
    harness.as,
    runtime.client,
    runtime.auth,
    token,
    INSECURE,
  );
  return await readReply(harness, response);
}

/** Verifies a Deputy token with jose against the JWK set served at `/oauth/jwks`. */
export async function verifyIssued(
  harness: OAuthHarness,
  token: string,
  expected: { typ: string; audience: string },
): Promise<{ payload: JWTPayload; header: Record<string, unknown> }> {
  const jwks = createRemoteJWKSet(new URL(`${harness.issuer}/oauth/jwks`));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: harness.issuer,
    audience: expected.audience,
    typ: expected.typ,
    algorithms: ['ES256'],
  });
  return { payload, header: protectedHeader as Record<string, unknown> };
}

/** Reads a token's payload without verifying it. */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
}

/** Resolves once the clock has passed the whole second `second` (seconds since the epoch). */
export async function waitPastSecond(second: number): Promise<void> {
  while (Math.floor(Date.now() / 1000) <= second) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** An HTTP server on 127.0.0.1 that counts requests and serves `body` as JSON, or 404. */
export interface LoopbackServer {
  url: string;
  requests(): number;
  close(): Promise<void>;
}

export async function startLoopbackServer(body: unknown | null): Promise<LoopbackServer> {
  let count = 0;
  const server: Server = createServer((_request, response) => {
    count++;
    if (body === null) {
      response.statusCode = 404;
      response.end();
      return;
    }
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
