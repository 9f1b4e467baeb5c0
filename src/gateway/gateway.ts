/**
 * The gateway as one request handler in front of the HTTP API: the MCP endpoint, the HTTP
 * egress proxy and the protected resource metadata (RFC 9728). Other requests go to the API.
 */
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import type { Deputy } from '../deputy.js';
import type { OAuthContext } from '../oauth/context.js';
import { GATEWAY_SCOPES } from '../oauth/context.js';
import { authenticateBearer, BearerError, recordBearerFailure } from './bearer.js';
import { EgressProxy } from './egress/proxy.js';
import { InFlightCalls } from './in-flight.js';
import { McpGateway } from './mcp.js';
import { UpstreamPool } from './upstreams.js';

/** Path of the MCP endpoint. The gateway's resource identifier is the issuer plus this path. */
export const MCP_PATH = '/mcp';

/** Path prefix of the egress proxy's per-connection routes. */
export const PROXY_PREFIX = '/proxy/';

const METADATA_PATH = '/.well-known/oauth-protected-resource';

export interface GatewayOptions {
  deputy: Deputy;
  oauth: OAuthContext;
  /** Directory that contains one directory per memory compartment. */
  compartmentDir: string;
  /**
   * Origins (`scheme://host:port`) browsers may call the MCP endpoint from, besides the issuer's
   * own. A request with any other `Origin` is rejected with 403.
   */
  allowedOrigins?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
}

export class Gateway {
  readonly resource: string;
  readonly resourceMetadataUrl: string;
  readonly upstreams: UpstreamPool;
  readonly #options: GatewayOptions;
  readonly #mcp: McpGateway;
  readonly #egress: EgressProxy;
  readonly #origins: ReadonlySet<string>;
  readonly #inFlight = new InFlightCalls();

  constructor(options: GatewayOptions) {
    const issuer = options.oauth.settings.issuer;
    this.#options = options;
    this.resource = `${issuer}${MCP_PATH}`;
    this.resourceMetadataUrl = `${issuer}${METADATA_PATH}${MCP_PATH}`;
    this.#origins = new Set([new URL(issuer).origin, ...(options.allowedOrigins ?? [])]);
    this.upstreams = new UpstreamPool({
      secrets: options.deputy.secrets,
      logger: options.deputy.logger,
      compartmentDir: options.compartmentDir,
      currentConnection: (workspace, id) =>
        options.deputy.engine
          .workspace(workspace)
          ?.policy.connections.find((connection) => connection.id === id),
      ...(options.env ? { env: options.env } : {}),
    });
    this.#mcp = new McpGateway({
      deputy: options.deputy,
      upstreams: this.upstreams,
      inFlight: this.#inFlight,
    });
    this.#egress = new EgressProxy({
      deputy: options.deputy,
      oauth: options.oauth,
      resource: this.resource,
      resourceMetadataUrl: this.resourceMetadataUrl,
      inFlight: this.#inFlight,
      ...(options.env ? { env: options.env } : {}),
    });
  }

  get mcp(): McpGateway {
    return this.#mcp;
  }

  /** Tests whether the gateway serves this request. The HTTP API serves the rest. */
  handles(request: IncomingMessage): boolean {
    const url = request.url ?? '/';
    if (!url.startsWith('/')) return true;
    const path = url.split('?', 1)[0]!;
    return path === MCP_PATH || url.startsWith(PROXY_PREFIX) || path.startsWith(METADATA_PATH);
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? '/';
    try {
      if (!url.startsWith('/')) return await this.#egress.handleForward(request, response);
      if (url.startsWith(PROXY_PREFIX)) {
        return await this.#egress.handleRoute(request, response, url.slice(PROXY_PREFIX.length));
      }
      if (url.split('?', 1)[0]!.startsWith(METADATA_PATH)) return this.#metadata(request, response);
      await this.#serveMcp(request, response);
    } catch (error) {
      this.#options.deputy.logger.error({ err: error }, 'gateway request failed');
      if (!response.headersSent) {
        writeJson(response, 500, {
          error: 'server_error',
          error_description: 'internal error; see the server log',
        });
      } else {
        response.destroy();
      }
    }
  }

  /**
   * Handles a CONNECT request: the forward proxy takes plain HTTP only, so after the usual
   * authentication it is rejected with 405 and recorded.
   */
  async handleConnect(request: IncomingMessage, socket: Duplex): Promise<void> {
    const response = new ServerResponse(request);
    response.assignSocket(socket as Socket);
    response.shouldKeepAlive = false;
    response.on('finish', () => socket.end());
    await this.handle(request, response);
  }

  async #serveMcp(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // Origin validation guards against DNS rebinding from a browser (MCP Streamable HTTP
    // transport, security warning); clients other than browsers send no Origin.
    const origin = request.headers.origin;
    if (origin !== undefined && !this.#origins.has(origin)) {
      writeJson(response, 403, {
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600, message: `Origin ${origin} is not allowed` },
      });
      return;
    }

    let caller;
    try {
      caller = await authenticateBearer(
        this.#options.oauth,
        this.resource,
        request.headers.authorization,
        'mcp',
      );
    } catch (error) {
      if (!(error instanceof BearerError)) throw error;
      await recordBearerFailure(this.#options.deputy, error, 'mcp', randomUUID());
      response.setHeader('www-authenticate', error.challenge(this.resourceMetadataUrl));
      writeJson(response, error.status, {
        error: error.error ?? 'invalid_token',
        error_description: error.message,
      });
      return;
    }
    await this.#mcp.handle(request, response, caller);
  }

  /**
   * Protected resource metadata (RFC 9728, section 3). Its URL inserts the well-known path
   * before the resource's path, and the document must name that resource, so it is served at
   * `/.well-known/oauth-protected-resource/mcp` only.
   */
  #metadata(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '').split('?', 1)[0];
    if (request.method !== 'GET' || path !== `${METADATA_PATH}${MCP_PATH}`) {
      writeJson(response, 404, {
        error: 'not_found',
        error_description: `no route for ${request.method} ${path}`,
      });
      return;
    }
    writeJson(response, 200, {
      resource: this.resource,
      authorization_servers: [this.#options.oauth.settings.issuer],
      scopes_supported: [...GATEWAY_SCOPES],
      bearer_methods_supported: ['header'],
      resource_name: 'Deputy gateway',
    });
  }

  async close(): Promise<void> {
    this.#inFlight.close();
    await this.#mcp.close();
    await this.#egress.close();
    await this.upstreams.close();
  }
}

function writeJson(response: ServerResponse, status: number, body: unknown): void {
  response.statusCode = status;
  response.setHeader('content-type', 'application/json');
  response.setHeader('cache-control', 'no-store');
  response.end(JSON.stringify(body));
}
