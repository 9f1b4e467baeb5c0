import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';

import type { Deputy } from '../../deputy.js';
import { disable, enable } from '../../kill-switch.js';
import { CLIENT_AUTH_METHODS } from '../../oauth/clients.js';
import { callContext, requireRole } from '../auth.js';
import { badRequest, notFound } from '../errors.js';
import { currentRevision } from './edit.js';

const agentParams = z.object({ workspace: z.string(), id: z.string() });
const switchBody = z.strictObject({ identity: z.string().optional() }).nullish();

/** Registers the kill switch and runtime client routes, per agent. */
export const agentRoutes: FastifyPluginAsyncZod<{ deputy: Deputy }> = async (app, { deputy }) => {
  const admin = requireRole(deputy, ['admin']);
  const tags = ['Agents'];

  async function target(workspace: string, agent: string, identity: string | undefined) {
    const current = await currentRevision(deputy, workspace);
    if (!current.policy.agents.some((entry) => entry.id === agent)) {
      throw notFound(`agent ${agent} not found in workspace ${workspace}`);
    }
    return { workspace, agent, identity };
  }

  app.post(
    '/admin/v1/workspaces/:workspace/agents/:id/disable',
    { onRequest: admin, schema: { tags, params: agentParams, body: switchBody } },
    async (request) => {
      const { workspace, id } = request.params;
      const result = await guard(async () =>
        disable(deputy, await target(workspace, id, request.body?.identity), callContext(request)),
      );
      return { revision: result.revision, revoked_at: result.revokedAt };
    },
  );

  app.post(
    '/admin/v1/workspaces/:workspace/agents/:id/enable',
    { onRequest: admin, schema: { tags, params: agentParams, body: switchBody } },
    async (request) => {
      const { workspace, id } = request.params;
      const result = await guard(async () =>
        enable(deputy, await target(workspace, id, request.body?.identity), callContext(request)),
      );
      return { revision: result.revision };
    },
  );

  app.get(
    '/admin/v1/workspaces/:workspace/agents/:id/clients',
    { onRequest: admin, schema: { tags, params: agentParams } },
    async (request) => {
      const { workspace, id } = request.params;
      return { clients: deputy.clients.list(workspace).filter((client) => client.agent === id) };
    },
  );

  app.post(
    '/admin/v1/workspaces/:workspace/agents/:id/clients',
    {
      onRequest: admin,
      schema: {
        tags,
        params: agentParams,
        body: z.strictObject({
          auth_method: z.enum(CLIENT_AUTH_METHODS),
          jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
          label: z.string().max(200).optional(),
        }),
      },
    },
    async (request, reply) => {
      const { workspace, id } = request.params;
      await target(workspace, id, undefined);
      const created = await guard(() =>
        deputy.createClient(
          {
            workspace,
            agent: id,
            authMethod: request.body.auth_method,
            jwks: request.body.jwks as never,
            label: request.body.label,
          },
          callContext(request),
        ),
      );
      return reply.code(201).send({
        client_id: created.client.clientId,
        auth_method: created.client.authMethod,
        ...(created.secret === null ? {} : { client_secret: created.secret }),
      });
    },
  );

  app.delete(
    '/admin/v1/workspaces/:workspace/agents/:id/clients/:client',
    { onRequest: admin, schema: { tags, params: agentParams.extend({ client: z.string() }) } },
    async (request, reply) => {
      const { workspace, id, client } = request.params;
      const found = deputy.clients.get(client);
      if (!found || found.workspace !== workspace || found.agent !== id) {
        throw notFound(`runtime client ${client} not found for agent ${id}`);
      }
      await deputy.disableClient(client, callContext(request));
      return reply.code(204).send();
    },
  );
};

/** Turns a TypeError from a misused kill switch or client registration into a 400. */
async function guard<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof TypeError) throw badRequest(error.message);
    throw error;
  }
}
