import fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify';
import swagger from '@fastify/swagger';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';

import type { Deputy } from '../deputy.js';
import { RevisionConflictError } from '../storage/revisions.js';
import { auditRoutes } from './admin/audit.js';
import { connectionRoutes } from './admin/connections.js';
import { keyRoutes } from './admin/keys.js';
import { workspaceRoutes } from './admin/workspaces.js';
import { authzenRoutes } from './authzen/routes.js';
import { ApiError } from './errors.js';
import { agentRoutes } from './admin/agents.js';
import { oauthRoutes } from '../oauth/routes.js';
import { createOAuthContext, type OAuthSettings } from '../oauth/context.js';
import { Gateway, MCP_PATH } from '../gateway/gateway.js';
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

export interface ServerOptions {
  deputy: Deputy;
  logger: Logger;
  /** Base URL published in discovery documents. */
  publicUrl: string;
  /** Identity token lifetime, in seconds. @default 600 */
  identityTokenLifetimeSeconds?: number;
  /** Largest accepted request body, in bytes. @default 1048576 */
  bodyLimit?: number;
  /** The gateway (MCP endpoint and egress proxy); no gateway when omitted. */
  gateway?: {
    /** Directory that holds one directory per memory compartment. */
    compartmentDir: string;
    /** Browser origins allowed to call the MCP endpoint, besides the public URL's own. */
    allowedOrigins?: readonly string[];
    /** Environment that `env:NAME` secret references read. @default process.env */
    env?: Readonly<Record<string, string | undefined>>;
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = FastifyInstance<any, any, any, any, any>;

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** Builds the HTTP API: AuthZEN, the admin REST API and its OpenAPI 3.1 description. */
export async function buildServer(options: ServerOptions): Promise<App> {
  const { deputy, publicUrl } = options;
  const settings: OAuthSettings = {
    issuer: publicUrl,
    identityTokenLifetimeSeconds: options.identityTokenLifetimeSeconds ?? 600,
    ...(options.gateway ? { gatewayResource: `${publicUrl}${MCP_PATH}` } : {}),
  };
  const gateway = options.gateway
    ? new Gateway({
        deputy,
        oauth: createOAuthContext(deputy, settings),
        compartmentDir: options.gateway.compartmentDir,
        ...(options.gateway.allowedOrigins
          ? { allowedOrigins: options.gateway.allowedOrigins }
          : {}),
        ...(options.gateway.env ? { env: options.gateway.env } : {}),
      })
    : undefined;

  const app = fastify({
    // The gateway takes its requests before Fastify routes them: the forward proxy's
    // absolute-form targets are not paths, and proxied bodies must stay unparsed.
    serverFactory: (handler) => {
      const server = createServer((request, response) => {
        if (gateway?.handles(request)) void gateway.handle(request, response);
        else handler(request, response);
      });
      // CONNECT requests arrive as their own event; without a listener Node drops them.
      server.on('connect', (request: IncomingMessage, socket: Duplex) => {
        if (gateway) void gateway.handleConnect(request, socket);
        else socket.destroy();
      });
      return server;
    },
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? 1_048_576,
    // A caller's X-Request-ID is kept when it is printable ASCII; otherwise Deputy makes one.
    genReqId: (request) => {
      const header = request.headers['x-request-id'];
      return typeof header === 'string' && REQUEST_ID.test(header) ? header : crypto.randomUUID();
    },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // Responses are plain JSON; their schemas document the API without re-validating output.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  installJsonOnly(app);
  installErrorHandler(app);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.header('cache-control', 'no-store');
  });
  app.addHook('onResponse', async (request, reply) => {
    // The URL is logged without its query string, which could carry a credential.
    request.log.info(
      { method: request.method, route: request.routeOptions.url, status: reply.statusCode },
      'request completed',
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Deputy',
        version: '0.1.0',
        description: 'Identity, access and audit for AI agents',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'dpy_… API key' },
        },
      },
      security: [{ apiKey: [] }],
    },
    transform: jsonSchemaTransform,
  });

  if (gateway) {
    app.decorate('gateway', gateway);
    // Before Fastify waits for open requests: an MCP event stream stays open until the gateway
    // closes it.
    app.addHook('preClose', async () => await gateway.close());
  }
  await app.register(authzenRoutes, { deputy, publicUrl });
  await app.register(workspaceRoutes, { deputy });
  await app.register(connectionRoutes, { deputy });
  await app.register(auditRoutes, { deputy });
  await app.register(keyRoutes, { deputy });
  await app.register(oauthRoutes, {
    deputy,
    settings,
  });
  await app.register(agentRoutes, { deputy });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  return app;
}

/**
 * Accepts only `application/json` bodies: anything else, an empty body or malformed JSON is a
 * 400, as AuthZEN's transport rules require.
 */
function installJsonOnly(app: App): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    // The OAuth endpoints take form bodies (RFC 6749, section 4.1.3); everything else JSON.
    if (type === 'application/x-www-form-urlencoded' && request.url.startsWith('/oauth/')) {
      done(null, new URLSearchParams(body as string));
      return;
    }
    if (type !== 'application/json') {
      done(
        new ApiError(400, 'invalid_request', 'the request body must be application/json'),
        undefined,
      );
      return;
    }
    parseJson(request, body as string, done);
  });
}

function installErrorHandler(app: App): void {
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({
      error: 'not_found',
      error_description: `no route for ${request.method} ${request.routeOptions.url ?? 'this path'}`,
    });
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof ApiError) {
      const body: Record<string, unknown> = {
        error: error.error,
        error_description: error.message,
      };
      if (error.details !== undefined) body.issues = error.details;
      return reply.code(error.statusCode).send(body);
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = error.validation.map((issue) => ({
        path: `${error.validationContext ?? 'body'}${issue.instancePath.replaceAll('/', '.')}`.replace(
          /\.$/,
          '',
        ),
        message: issue.message,
      }));
      const first = issues[0];
      return reply.code(400).send({
        error: 'invalid_request',
        error_description: first ? `${first.path}: ${first.message}` : 'invalid request',
        issues,
      });
    }
    if (error instanceof RevisionConflictError) {
      return reply.code(409).send({
        error: 'conflict',
        error_description: error.message,
        current_revision: error.current,
      });
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return reply
        .code(error.statusCode)
        .send({ error: 'invalid_request', error_description: error.message });
    }
    request.log.error({ err: error }, 'request failed');
    return reply
      .code(500)
      .send({ error: 'server_error', error_description: 'internal error; see the server log' });
  });
}
