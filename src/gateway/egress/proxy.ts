/**
 * The HTTP egress proxy. Agents call external APIs through Deputy, which decides each request,
 * injects the connection's credential, and sends it only to the connection's hosts, paths and
 * methods. Two modes: `/proxy/<connection>/<path>` on the gateway, and a forward proxy for
 * plain HTTP (`GET http://host/path` with `Proxy-Authorization`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';

import { Agent, request as undiciRequest } from 'undici';

import type { Deputy } from '../../deputy.js';
import type { Decision } from '../../engine/types.js';
import type { Connection } from '../../model/policy.js';
import type { OAuthContext } from '../../oauth/context.js';
import { resolveCredential } from '../../connections/credentials.js';
import {
  authenticateBearer,
  BearerError,
  type GatewayCaller,
  recordBearerFailure,
} from '../bearer.js';
import {
  credentialHeaders,
  credentialQuery,
  injectBodyCredential,
  isHttpScheme,
  secretForms,
} from '../credential-injection.js';
import { CallRevokedError, type InFlightCalls } from '../in-flight.js';
import { fingerprintOf } from '../upstreams.js';
import {
  createCheckedAgent,
  DestinationError,
  hostKey,
  isHostAllowed,
  resolveDestination,
} from './destination.js';
import { isUnderPrefix, matchRoute, normalisePath, PathError } from './paths.js';
import {
  checkMethod,
  decodeConnectionId,
  DROPPED_RESPONSE_HEADERS,
  forwardedHeaders,
  joinPath,
  parseAbsoluteTarget,
  parsePath,
  readBody,
  Refusal,
  splitTarget,
} from './request.js';
import { scrubHeader, scrubStream } from './scrub.js';

export interface EgressOptions {
  deputy: Deputy;
  oauth: OAuthContext;
  /** The gateway's resource identifier, the audience of accepted tokens. */
  resource: string;
  /** URL of the gateway's protected resource metadata, for challenges. */
  resourceMetadataUrl: string;
  /** Largest request body forwarded, in bytes. @default 1048576 */
  maxBodyBytes?: number;
  /** Environment that `env:NAME` secret references read. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** Requests in flight, stopped when their token stops being active. */
  inFlight: InFlightCalls;
}

/** One request through the proxy, as far as it got. */
interface Exchange {
  readonly requestId: string;
  readonly started: number;
  readonly method: string;
  /** Whether the request came as a forward-proxy request, which uses Proxy-Authenticate. */
  forward: boolean;
  decisionId: string | null;
  /** The decision on the route's action and resource, once made. */
  decision?: Decision;
  /** Status the upstream responded with, once its headers arrived. */
  status?: number;
  /** Whether the request left for the upstream. */
  sent?: boolean;
  caller?: GatewayCaller;
  connection?: Connection;
  target?: URL;
  action?: string;
  resource?: string;
}

export class EgressProxy {
  readonly #options: EgressOptions;
  readonly #agents = new Map<string, { fingerprint: string; agent: Agent }>();

  constructor(options: EgressOptions) {
    this.#options = options;
  }

  /** Serves `/proxy/<connection>/<path>`; `rest` is the request target after `/proxy/`. */
  async handleRoute(
    request: IncomingMessage,
    response: ServerResponse,
    rest: string,
  ): Promise<void> {
    const exchange = newExchange(request, false);
    try {
      const caller = await this.#authenticate(request.headers.authorization, false);
      exchange.caller = caller;
      const slash = rest.indexOf('/');
      const id = decodeConnectionId(slash === -1 ? rest : rest.slice(0, slash));
      const connection = this.#connection(caller, id);
      exchange.connection = connection;
      if (connection.url === undefined) {
        throw new Refusal(404, 'connection_not_found', `connection ${id} has no url to proxy to`);
      }

      const target = slash === -1 ? '/' : rest.slice(slash);
      const base = new URL(connection.url);
      const { pathname, search } = splitTarget(target);
      const relative = parsePath(pathname);
      const basePath = normalisePath(base.pathname);
      const segments = [...basePath.segments, ...relative.segments];
      const path = joinPath(basePath.path, relative.path);
      const url = new URL(`${base.protocol}//${base.host}${path}${search}`);
      await this.#forward(request, response, exchange, connection, url, { segments, path });
    } catch (error) {
      await this.#fail(response, exchange, error);
    }
  }

  /** Serves a forward-proxy request whose target is an absolute `http:` URL. */
  async handleForward(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const exchange = newExchange(request, true);
    try {
      const caller = await this.#authenticate(request.headers['proxy-authorization'], true);
      exchange.caller = caller;
      if (request.method === 'CONNECT') {
        throw new Refusal(
          405,
          'method_not_allowed',
          'CONNECT is not supported; call https APIs through /proxy/<connection>/',
        );
      }
      const raw = request.url ?? '';
      const url = parseAbsoluteTarget(raw);
      const normalised = parsePath(url.pathname);
      url.pathname = normalised.path;

      const connection = this.#connectionForHost(caller, url);
      exchange.connection = connection ?? undefined;
      if (connection === null) {
        await this.#forwardToDomain(request, response, exchange, url, normalised);
      } else {
        await this.#forward(request, response, exchange, connection, url, normalised);
      }
    } catch (error) {
      await this.#fail(response, exchange, error);
    }
  }

  async #authenticate(header: string | undefined, proxy: boolean): Promise<GatewayCaller> {
    try {
      return await authenticateBearer(this.#options.oauth, this.#options.resource, header, 'proxy');
    } catch (error) {
      if (error instanceof BearerError && proxy && error.status === 401) {
        throw new BearerError(407, error.error, error.message, error.scope);
      }
      throw error;
    }
  }

  #connection(caller: GatewayCaller, id: string): Connection {
    const policy = this.#options.deputy.engine.workspace(caller.workspace)?.policy;
    const connection = policy?.connections.find((entry) => entry.id === id);
    if (!connection || connection.kind === 'mcp') {
      throw new Refusal(404, 'connection_not_found', `no HTTP connection ${id} in this workspace`);
    }
    return connection;
  }

  /** The connection whose url has this scheme and whose hosts list this host, if one does. */
  #connectionForHost(caller: GatewayCaller, url: URL): Connection | null {
    const policy = this.#options.deputy.engine.workspace(caller.workspace)?.policy;
    for (const connection of policy?.connections ?? []) {
      if (connection.kind === 'mcp' || connection.url === undefined) continue;
      if (new URL(connection.url).protocol !== url.protocol) continue;
      if (isHostAllowed(connection, url)) return connection;
    }
    return null;
  }

  async #forward(
    request: IncomingMessage,
    response: ServerResponse,
    exchange: Exchange,
    connection: Connection,
    url: URL,
    path: { segments: readonly string[]; path: string },
  ): Promise<void> {
    exchange.target = url;
    const method = exchange.method;
    checkMethod(connection, method);
    const prefixes = connection.path_prefixes.map(normalisePath);
    if (!prefixes.some((prefix) => isUnderPrefix(path, prefix))) {
      throw new Refusal(
        403,
        'path_not_allowed',
        `${path.path} is not under the paths of connection ${connection.id}`,
      );
    }
    if (!isHostAllowed(connection, url)) {
      throw new Refusal(
        403,
        'host_not_allowed',
        `${hostKey(url)} is not a host of connection ${connection.id}`,
      );
    }
    if (!isHttpScheme(connection)) {
      throw new Refusal(
        403,
        'credential_unavailable',
        `the credential of connection ${connection.id} cannot be sent over HTTP`,
      );
    }

    const route = matchRoute(connection.routes, method, path);
    if (route === null) {
      throw new Refusal(
        403,
        'no_matching_route',
        `no route of connection ${connection.id} matches ${method} ${path.path}`,
      );
    }
    exchange.action = route.route.action;
    exchange.resource = route.resource;
    await this.#decide(exchange);

    const secret = await this.#secret(exchange.caller!, connection);
    await this.#send(request, response, exchange, connection, url, secret);
  }

  /** A host that no connection covers: allowed by a bundle's `domains`, and never a credential. */
  async #forwardToDomain(
    request: IncomingMessage,
    response: ServerResponse,
    exchange: Exchange,
    url: URL,
    path: { path: string },
  ): Promise<void> {
    exchange.target = url;
    exchange.action = 'web.fetch';
    exchange.resource = `host:${url.hostname.replace(/^\[(.*)\]$/, '$1')}`;
    checkMethod(DOMAIN_CONNECTION, exchange.method);
    await this.#decide(exchange);
    url.pathname = path.path;
    await this.#send(request, response, exchange, DOMAIN_CONNECTION, url, null);
  }

  async #decide(exchange: Exchange): Promise<void> {
    const caller = exchange.caller!;
    const [decision] = await this.#options.deputy.decide(
      [
        {
          workspace: caller.workspace,
          agent: caller.agent,
          channel: caller.channel,
          invoker: caller.invoker,
          action: exchange.action!,
          resource: exchange.resource!,
        },
      ],
      { actor: { type: 'agent', id: caller.agent }, requestId: exchange.requestId },
    );
    exchange.decisionId = decision!.decisionId;
    exchange.decision = decision!;
    if (!decision!.allowed) {
      throw new Refusal(403, decision!.reason, `denied: ${decision!.reason}`, decision!.decisionId);
    }
  }

  async #secret(caller: GatewayCaller, connection: Connection): Promise<string | null> {
    try {
      const { deputy, env } = this.#options;
      return await resolveCredential(caller.workspace, connection, deputy.secrets, env);
    } catch (error) {
      this.#options.deputy.logger.error(
        { err: error, connection: connection.id },
        'credential unavailable',
      );
      throw new Refusal(
        502,
        'credential_unavailable',
        `the credential of connection ${connection.id} is unavailable`,
      );
    }
  }

  async #send(
    request: IncomingMessage,
    response: ServerResponse,
    exchange: Exchange,
    connection: Connection,
    url: URL,
    secret: string | null,
  ): Promise<void> {
    const injected = credentialHeaders(connection, secret);
    const headers = forwardedHeaders(request.headers, injected);
    const query = credentialQuery(connection, secret);
    if (query !== null) {
      url.searchParams.delete(query[0]);
      url.searchParams.append(query[0], query[1]);
    }

    let body: Buffer | undefined;
    if (exchange.method !== 'GET' && exchange.method !== 'HEAD') {
      body = await readBody(
        request,
        this.#options.maxBodyBytes ?? 1_048_576,
        connection.timeout_ms,
      );
      try {
        const type = request.headers['content-type'] ?? '';
        body = injectBodyCredential(connection, secret, type, body);
        // A body made from nothing is a JSON object, so its content type is set to JSON.
        if (type === '' && connection.credential?.scheme === 'body' && secret !== null) {
          headers['content-type'] = 'application/json';
        }
      } catch (error) {
        throw new Refusal(400, 'invalid_request', (error as Error).message);
      }
    }

    await resolveDestination(connection, url.hostname.replace(/^\[(.*)\]$/, '$1'));
    // The request, and the response body after it, stop when the token stops being active.
    // A response is checked for the credential, which needs it uncompressed.
    if (secret !== null) headers['accept-encoding'] = 'identity';
    const forms = secretForms(connection, secret);
    // The token is checked again right before sending: the kill switch may have fired while
    // the body arrived.
    const { isActive } = exchange.caller!;
    const status = await this.#options.inFlight.run(isActive, async (signal, ensureActive) => {
      ensureActive();
      exchange.sent = true;
      const upstream = await this.#request(connection, url, exchange.method, headers, body, signal);
      const encoding = String(upstream.headers['content-encoding'] ?? 'identity').toLowerCase();
      const transfer = String(upstream.headers['transfer-encoding'] ?? 'chunked').toLowerCase();
      if (
        secret !== null &&
        (encoding !== 'identity' || transfer.replace(/\s/g, '') !== 'chunked')
      ) {
        await upstream.body.dump();
        throw new Refusal(
          502,
          'upstream_error',
          `connection ${connection.id} sent a ${encoding} response, which cannot be checked for the credential`,
        );
      }
      response.statusCode = upstream.statusCode;
      for (const [name, value] of Object.entries(upstream.headers)) {
        if (value === undefined || DROPPED_RESPONSE_HEADERS.has(name)) continue;
        if (secret !== null && name === 'content-length') continue;
        response.setHeader(name, secret === null ? value : scrubHeader(value, forms));
      }
      response.setHeader('x-request-id', exchange.requestId);
      exchange.status = upstream.statusCode;
      if (secret === null) await pipeline(upstream.body, response);
      else await pipeline(upstream.body, scrubStream(forms), response);
      return upstream.statusCode;
    });
    // The response is complete, so its record can share the next transaction.
    await this.#record(exchange, 'allow', 'granted', exchange.decisionId, status, undefined, true);
  }

  async #request(
    connection: Connection,
    url: URL,
    method: string,
    headers: Record<string, string | string[]>,
    body: Buffer | undefined,
    signal: AbortSignal,
  ) {
    try {
      return await undiciRequest(url, {
        method: method as 'GET',
        headers,
        body,
        signal,
        dispatcher: this.#agent(connection),
        headersTimeout: connection.timeout_ms,
        bodyTimeout: connection.timeout_ms,
      });
    } catch (error) {
      if (signal.aborted) throw error;
      const code = (error as { code?: string }).code;
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        throw new Refusal(504, 'upstream_timeout', `connection ${connection.id} timed out`);
      }
      if (error instanceof DestinationError) throw error;
      throw new Refusal(
        502,
        'upstream_error',
        `connection ${connection.id} failed (${code ?? 'error'})`,
      );
    }
  }

  /** A keep-alive agent per connection that connects only to checked addresses. */
  #agent(connection: Connection): Agent {
    const key = connection.id;
    const fingerprint = fingerprintOf(connection);
    const cached = this.#agents.get(key);
    if (cached?.fingerprint === fingerprint) return cached.agent;
    if (cached) void cached.agent.close();

    const agent = createCheckedAgent(connection);
    this.#agents.set(key, { fingerprint, agent });
    return agent;
  }

  async #fail(response: ServerResponse, exchange: Exchange, error: unknown) {
    if (error instanceof BearerError) {
      await recordBearerFailure(this.#options.deputy, error, 'proxy', exchange.requestId);
      const status = error.status;
      const header = exchange.forward ? 'proxy-authenticate' : 'www-authenticate';
      response.statusCode = status;
      response.setHeader(header, error.challenge(this.#options.resourceMetadataUrl));
      sendJson(response, exchange, {
        error: error.error ?? 'invalid_token',
        error_description: error.message,
      });
      return;
    }
    let refusal: Refusal;
    if (error instanceof Refusal) refusal = error;
    else if (error instanceof CallRevokedError) {
      refusal = new Refusal(403, 'token_revoked', error.message, exchange.decisionId);
    } else if (error instanceof PathError)
      refusal = new Refusal(400, 'invalid_request', error.message);
    else if (error instanceof DestinationError) {
      refusal = new Refusal(
        error.reason === 'host_not_found' ? 502 : 403,
        error.reason,
        error.message,
      );
    } else {
      this.#options.deputy.logger.error(
        { err: error, requestId: exchange.requestId },
        'egress request failed',
      );
      refusal = new Refusal(502, 'upstream_error', 'the request failed; see the server log');
    }

    if (response.headersSent) {
      response.destroy();
    } else {
      response.statusCode = refusal.status;
      sendJson(response, exchange, { error: refusal.reason, error_description: refusal.message });
    }
    if (exchange.caller) {
      try {
        // Once sent, the request may have taken effect upstream: it is recorded as allowed,
        // with its status if one arrived and why the response did not reach the caller whole.
        if (exchange.sent) {
          const { decisionId } = exchange;
          const status = exchange.status ?? null;
          await this.#record(exchange, 'allow', 'granted', decisionId, status, refusal.reason);
        } else {
          const decisionId = refusal.decisionId ?? exchange.decisionId;
          await this.#record(exchange, 'deny', refusal.reason, decisionId, null);
        }
      } catch (auditError) {
        this.#options.deputy.logger.error(
          { err: auditError, requestId: exchange.requestId },
          'audit write failed',
        );
      }
    }
  }

  async #record(
    exchange: Exchange,
    decision: 'allow' | 'deny',
    reason: string,
    decisionId: string | null,
    status: number | null,
    responseError?: string,
    deferred = false,
  ): Promise<void> {
    const caller = exchange.caller!;
    const target = exchange.target;
    await this.#options.deputy.audit[deferred ? 'appendDeferred' : 'append']({
      type: 'http.request',
      workspace: caller.workspace,
      actor: { type: 'agent', id: caller.agent },
      identity: caller.identity,
      invoker: caller.invoker ?? null,
      scope: caller.scope,
      action: exchange.action ?? null,
      resource: exchange.resource ?? null,
      connection: exchange.connection?.id ?? null,
      decision,
      reason,
      bundle: exchange.decision?.bundle ?? null,
      grant: exchange.decision?.grant ?? null,
      revision: exchange.decision?.revision ?? null,
      decision_id: decisionId,
      request_id: exchange.requestId,
      detail: {
        method: exchange.method,
        // The query is left out: it may carry a credential or personal data.
        ...(target ? { host: hostKey(target), path: target.pathname } : {}),
        status,
        latency_ms: Math.round((performance.now() - exchange.started) * 100) / 100,
        ...(responseError === undefined ? {} : { response_error: responseError }),
      },
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.#agents.values()].map(({ agent }) => agent.close()));
    this.#agents.clear();
  }
}

/** Forward-proxy requests to hosts no connection covers: public addresses, any method. */
const DOMAIN_CONNECTION = {
  id: '$domains',
  kind: 'http',
  hosts: [],
  allow_addresses: [],
  read_only: false,
  path_prefixes: ['/'],
  routes: [],
  timeout_ms: 30_000,
} as unknown as Connection;

function newExchange(request: IncomingMessage, forward: boolean): Exchange {
  return {
    requestId: crypto.randomUUID(),
    started: performance.now(),
    method: (request.method ?? 'GET').toUpperCase(),
    forward,
    decisionId: null,
  };
}

function sendJson(response: ServerResponse, exchange: Exchange, body: Record<string, unknown>) {
  response.setHeader('content-type', 'application/json');
  response.setHeader('cache-control', 'no-store');
  response.setHeader('x-request-id', exchange.requestId);
  response.end(JSON.stringify(body));
}
