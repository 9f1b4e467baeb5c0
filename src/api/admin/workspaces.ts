import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';

import type { Deputy } from '../../deputy.js';
import { parsePolicy } from '../../model/validate.js';
import { callContext, requireRole } from '../auth.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import { clonePolicy, COLLECTION_NAMES, COLLECTIONS } from './collections.js';
import { checkCredentialEdits } from './credentials-guard.js';
import { commitEdit, currentRevision, invalidPolicy, setRevisionTag } from './edit.js';

const workspaceParams = z.object({ workspace: z.string() });
const entryParams = z.object({
  workspace: z.string(),
  collection: z.enum(COLLECTION_NAMES as [string, ...string[]]),
  id: z.string(),
});
const collectionParams = entryParams.omit({ id: true });
const attachmentParams = z.object({ workspace: z.string(), scope: z.string(), bundle: z.string() });
const attachmentBody = z.strictObject({
  until: z.string().optional(),
  agents: z.array(z.string()).optional(),
});

/** Admin REST API over workspaces, their entries, attachments and revisions. */
export const workspaceRoutes: FastifyPluginAsyncZod<{ deputy: Deputy }> = async (
  app,
  { deputy },
) => {
  const admin = requireRole(deputy, ['admin']);
  const tags = ['Workspaces'];

  app.get('/admin/v1/workspaces', { onRequest: admin, schema: { tags } }, async () => {
    const ids = await deputy.revisions.workspaces();
    return { workspaces: ids.map((id) => ({ id, revision: deputy.engine.revision(id) })) };
  });

  app.post(
    '/admin/v1/workspaces',
    { onRequest: admin, schema: { tags, body: z.unknown() } },
    async (request, reply) => {
      const parsed = parsePolicy(request.body);
      if (!parsed.ok) {
        throw invalidPolicy('invalid policy document', parsed.issues);
      }
      checkCredentialEdits(null, parsed.policy);
      const revision = await deputy.apply(
        parsed.policy,
        0,
        'create workspace',
        callContext(request),
        'admin.change',
      );
      setRevisionTag(reply, revision);
      return reply.code(201).send({ workspace: parsed.policy.workspace.id, revision });
    },
  );

  app.get(
    '/admin/v1/workspaces/:workspace',
    { onRequest: admin, schema: { tags, params: workspaceParams } },
    async (request, reply) => {
      const current = await currentRevision(deputy, request.params.workspace);
      setRevisionTag(reply, current.revision);
      return { revision: current.revision, policy: current.policy };
    },
  );

  app.put(
    '/admin/v1/workspaces/:workspace',
    { onRequest: admin, schema: { tags, params: workspaceParams, body: z.unknown() } },
    async (request, reply) => {
      await currentRevision(deputy, request.params.workspace);
      // The body is a policy document, or what GET returned: { revision, policy }.
      const body = request.body as { policy?: unknown; version?: unknown } | null;
      const document =
        body && body.version === undefined && body.policy !== undefined ? body.policy : body;
      const id = (document as { workspace?: { id?: unknown } } | null)?.workspace?.id;
      if (id !== request.params.workspace) {
        throw badRequest(
          `workspace.id must be ${request.params.workspace}, the workspace in the URL`,
        );
      }
      const { revision } = await commitEdit(deputy, request, reply, document, 'replace policy');
      return { revision };
    },
  );

  app.get(
    '/admin/v1/workspaces/:workspace/:collection',
    { onRequest: admin, schema: { tags, params: collectionParams } },
    async (request, reply) => {
      const current = await currentRevision(deputy, request.params.workspace);
      setRevisionTag(reply, current.revision);
      const select = COLLECTIONS[request.params.collection as keyof typeof COLLECTIONS];
      return { revision: current.revision, items: select(current.policy) };
    },
  );

  app.get(
    '/admin/v1/workspaces/:workspace/:collection/:id',
    { onRequest: admin, schema: { tags, params: entryParams } },
    async (request, reply) => {
      const { workspace, collection, id } = request.params;
      const current = await currentRevision(deputy, workspace);
      const entry = COLLECTIONS[collection as keyof typeof COLLECTIONS](current.policy).find(
        (item) => item.id === id,
      );
      if (!entry) throw notFound(`${collection} entry ${id} not found in workspace ${workspace}`);
      setRevisionTag(reply, current.revision);
      return entry;
    },
  );

  app.put(
    '/admin/v1/workspaces/:workspace/:collection/:id',
    {
      onRequest: admin,
      schema: { tags, params: entryParams, body: z.record(z.string(), z.unknown()) },
    },
    async (request, reply) => {
      const { workspace, collection, id } = request.params;
      if (request.body.id !== undefined && request.body.id !== id) {
        throw badRequest(`id in the body must be ${id}, the id in the URL, or be left out`);
      }
      const current = await currentRevision(deputy, workspace);
      const edited = clonePolicy(current.policy);
      const entries = COLLECTIONS[collection as keyof typeof COLLECTIONS](edited);
      const entry = { ...request.body, id };
      const index = entries.findIndex((item) => item.id === id);
      const created = index === -1;
      if (created) entries.push(entry);
      else entries[index] = entry;

      const result = await commitEdit(deputy, request, reply, edited, `put ${collection} ${id}`);
      const saved = COLLECTIONS[collection as keyof typeof COLLECTIONS](result.policy).find(
        (item) => item.id === id,
      );
      return reply.code(created ? 201 : 200).send({ revision: result.revision, item: saved });
    },
  );

  app.delete(
    '/admin/v1/workspaces/:workspace/:collection/:id',
    { onRequest: admin, schema: { tags, params: entryParams } },
    async (request, reply) => {
      const { workspace, collection, id } = request.params;
      const current = await currentRevision(deputy, workspace);
      const edited = clonePolicy(current.policy);
      const entries = COLLECTIONS[collection as keyof typeof COLLECTIONS](edited);
      const index = entries.findIndex((item) => item.id === id);
      if (index === -1)
        throw notFound(`${collection} entry ${id} not found in workspace ${workspace}`);
      entries.splice(index, 1);
      const { revision } = await commitEdit(
        deputy,
        request,
        reply,
        edited,
        `delete ${collection} ${id}`,
      );
      return { revision };
    },
  );

  app.put(
    '/admin/v1/workspaces/:workspace/attachments/:scope/:bundle',
    {
      onRequest: admin,
      schema: { tags: ['Attachments'], params: attachmentParams, body: attachmentBody },
    },
    async (request, reply) => {
      const { workspace, scope, bundle } = request.params;
      const current = await currentRevision(deputy, workspace);
      const edited = clonePolicy(current.policy);
      const attachments = attachmentList(edited, scope);
      const attachment = { bundle, ...request.body };
      const index = attachments.findIndex((item) => item.bundle === bundle);
      if (index === -1) attachments.push(attachment);
      else attachments[index] = attachment;
      const { revision } = await commitEdit(
        deputy,
        request,
        reply,
        edited,
        `attach ${bundle} to ${scope}`,
      );
      return { revision, attachment };
    },
  );

  app.delete(
    '/admin/v1/workspaces/:workspace/attachments/:scope/:bundle',
    { onRequest: admin, schema: { tags: ['Attachments'], params: attachmentParams } },
    async (request, reply) => {
      const { workspace, scope, bundle } = request.params;
      const current = await currentRevision(deputy, workspace);
      const edited = clonePolicy(current.policy);
      const attachments = attachmentList(edited, scope);
      const index = attachments.findIndex((item) => item.bundle === bundle);
      if (index === -1) throw notFound(`bundle ${bundle} is not attached to ${scope}`);
      attachments.splice(index, 1);
      const { revision } = await commitEdit(
        deputy,
        request,
        reply,
        edited,
        `detach ${bundle} from ${scope}`,
      );
      return { revision };
    },
  );

  app.get(
    '/admin/v1/workspaces/:workspace/revisions',
    { onRequest: admin, schema: { tags: ['Revisions'], params: workspaceParams } },
    async (request) => {
      await currentRevision(deputy, request.params.workspace);
      return { revisions: await deputy.revisions.list(request.params.workspace) };
    },
  );

  app.get(
    '/admin/v1/workspaces/:workspace/revisions/:revision',
    {
      onRequest: admin,
      schema: {
        tags: ['Revisions'],
        params: z.object({ workspace: z.string(), revision: z.coerce.number().int().min(1) }),
      },
    },
    async (request) => {
      const found = await deputy.revisions.get(request.params.workspace, request.params.revision);
      if (!found)
        throw notFound(
          `revision ${request.params.revision} of ${request.params.workspace} not found`,
        );
      return found;
    },
  );
};

function attachmentList(policy: ReturnType<typeof clonePolicy>, scope: string) {
  if (scope === 'workspace') return policy.scopes.workspace.bundles;
  const channel = policy.scopes.channels.find((item) => item.id === scope);
  if (!channel)
    throw new ApiError(404, 'not_found', `scope ${scope} not found: use workspace or a channel id`);
  return channel.bundles;
}
