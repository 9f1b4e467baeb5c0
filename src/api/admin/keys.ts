import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';

import type { Deputy } from '../../deputy.js';
import { ROLES } from '../../storage/api-keys.js';
import { callContext, requireRole } from '../auth.js';
import { notFound } from '../errors.js';

/** API key management. A new key is returned once, in the creation response. */
export const keyRoutes: FastifyPluginAsyncZod<{ deputy: Deputy }> = async (app, { deputy }) => {
  const admin = requireRole(deputy, ['admin']);
  const tags = ['API keys'];

  app.get('/admin/v1/keys', { onRequest: admin, schema: { tags } }, async () => ({
    keys: await deputy.keys.list(),
  }));

  app.post(
    '/admin/v1/keys',
    {
      onRequest: admin,
      schema: {
        tags,
        body: z.strictObject({ role: z.enum(ROLES), label: z.string().max(200).default('') }),
      },
    },
    async (request, reply) => {
      const created = await deputy.createKey(
        request.body.role,
        request.body.label,
        callContext(request),
      );
      return reply.code(201).send({ id: created.id, role: request.body.role, key: created.key });
    },
  );

  app.delete(
    '/admin/v1/keys/:id',
    { onRequest: admin, schema: { tags, params: z.object({ id: z.string() }) } },
    async (request, reply) => {
      const revoked = await deputy.revokeKey(request.params.id, callContext(request));
      if (!revoked) throw notFound(`active API key ${request.params.id} not found`);
      return reply.code(204).send();
    },
  );
};
