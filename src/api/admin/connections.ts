import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';

import { resolveCredential } from '../../connections/credentials.js';
import { testConnection } from '../../connections/test-connection.js';
import type { Deputy } from '../../deputy.js';
import { callContext, requireRole } from '../auth.js';
import { ApiError, notFound } from '../errors.js';
import { currentRevision } from './edit.js';

const params = z.object({ workspace: z.string(), id: z.string() });

/** Write-only connection secrets and the live connection test. */
export const connectionRoutes: FastifyPluginAsyncZod<{ deputy: Deputy }> = async (
  app,
  { deputy },
) => {
  const admin = requireRole(deputy, ['admin']);
  const tags = ['Connections'];

  async function findConnection(workspace: string, id: string) {
    const current = await currentRevision(deputy, workspace);
    const connection = current.policy.connections.find((item) => item.id === id);
    if (!connection) throw notFound(`connection ${id} not found in workspace ${workspace}`);
    return connection;
  }

  app.put(
    '/admin/v1/workspaces/:workspace/connections/:id/secret',
    {
      onRequest: admin,
      schema: { tags, params, body: z.strictObject({ value: z.string().min(1).max(16_384) }) },
    },
    async (request, reply) => {
      const { workspace, id } = request.params;
      const connection = await findConnection(workspace, id);
      if (connection.credential?.secret !== 'stored') {
        throw new ApiError(
          409,
          'conflict',
          `connection ${id} does not read a stored secret: set credential.secret to stored first`,
        );
      }
      const call = callContext(request);
      await deputy.audit.append({
        type: 'secret.set',
        workspace,
        actor: call.actor,
        connection: id,
        request_id: call.requestId,
      });
      await deputy.secrets.put(workspace, id, request.body.value);
      return reply.code(204).send();
    },
  );

  app.get(
    '/admin/v1/workspaces/:workspace/connections/:id/secret',
    { onRequest: admin, schema: { tags, params } },
    async (request) => {
      const { workspace, id } = request.params;
      await findConnection(workspace, id);
      // Secrets are write-only: only whether one is set, and when, is ever returned.
      const updatedAt = await deputy.secrets.updatedAt(workspace, id);
      return { set: updatedAt !== null, updated_at: updatedAt };
    },
  );

  app.post(
    '/admin/v1/workspaces/:workspace/connections/:id/test',
    { onRequest: admin, schema: { tags, params } },
    async (request) => {
      const { workspace, id } = request.params;
      const connection = await findConnection(workspace, id);
      let secret: string | null;
      try {
        secret = await resolveCredential(workspace, connection, deputy.secrets);
      } catch (error) {
        return { ok: false, status: null, latency_ms: 0, error: (error as Error).message };
      }
      const result = await testConnection(connection, secret);
      const call = callContext(request);
      await deputy.audit.append({
        type: 'connection.test',
        workspace,
        actor: call.actor,
        connection: id,
        request_id: call.requestId,
        detail: { ok: result.ok, status: result.status, error: result.error },
      });
      return result;
    },
  );
};
