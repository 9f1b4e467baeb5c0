import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';

import { readAuditEvents } from '../../audit/read.js';
import { formatVerifyReport, verifyAudit } from '../../audit/verify.js';
import type { Deputy } from '../../deputy.js';
import { requireRole } from '../auth.js';

/** Read access to the audit log, for the admin and auditor roles. */
export const auditRoutes: FastifyPluginAsyncZod<{ deputy: Deputy }> = async (app, { deputy }) => {
  const reader = requireRole(deputy, ['admin', 'auditor']);
  const tags = ['Audit'];

  app.get(
    '/admin/v1/audit/events',
    {
      onRequest: reader,
      schema: {
        tags,
        querystring: z.object({
          workspace: z.string().optional(),
          after: z.coerce.number().int().min(0).default(0),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
      },
    },
    async (request) => {
      const { workspace, after, limit } = request.query;
      const page = await readAuditEvents(deputy.database, {
        limit,
        afterSeq: after,
        ...(workspace === undefined ? {} : { workspace }),
      });
      return { events: page.events, next_after: page.nextAfterSeq };
    },
  );

  app.get('/admin/v1/audit/verify', { onRequest: reader, schema: { tags } }, async () => {
    await deputy.audit.flush();
    const report = await verifyAudit(deputy.database, deputy.auditPublicKey);
    return { ...report, summary: formatVerifyReport(report).split('\n')[0] };
  });
};
