import type { FastifyReply, FastifyRequest } from 'fastify';

import type { Deputy } from '../../deputy.js';
import type { Policy } from '../../model/policy.js';
import { formatIssuePath, parsePolicy, type PolicyIssue } from '../../model/validate.js';
import type { Revision } from '../../storage/revisions.js';
import { callContext } from '../auth.js';
import { checkCredentialEdits, dropMovedSecrets } from './credentials-guard.js';
import { ApiError, badRequest, notFound } from '../errors.js';

/** Builds a 400 listing every issue of a policy, each with its path, message and fix. */
export function invalidPolicy(description: string, issues: readonly PolicyIssue[]) {
  return badRequest(
    description,
    issues.map((issue) => ({
      path: formatIssuePath(issue.path),
      message: issue.message,
      fix: issue.fix,
    })),
  );
}

/** Loads the current revision of a workspace or fails with 404. */
export async function currentRevision(deputy: Deputy, workspace: string): Promise<Revision> {
  const current = await deputy.revisions.current(workspace);
  if (!current) throw notFound(`workspace ${workspace} not found`);
  return current;
}

/**
 * Reads the revision a write is based on from `If-Match` (an ETag such as `"7"`). Writes
 * without it are rejected, so a client can never overwrite a change it has not seen.
 */
export function expectedRevision(request: FastifyRequest): number {
  const header = request.headers['if-match'];
  if (header === undefined) {
    throw new ApiError(
      428,
      'precondition_required',
      'send If-Match with the ETag header of a GET of this workspace, for example If-Match: "3"',
    );
  }
  const match = /^\s*(?:W\/)?"?(\d{1,9})"?\s*$/.exec(header);
  if (!match) throw badRequest('If-Match must be the ETag of a revision, for example "3"');
  return Number(match[1]);
}

export function setRevisionTag(reply: FastifyReply, revision: number): void {
  reply.header('etag', `"${revision}"`);
}

/**
 * Validates an edited policy and stores it as a new revision based on the client's `If-Match`.
 * Invalid edits are 400 with every issue; nothing is stored for them.
 */
export async function commitEdit(
  deputy: Deputy,
  request: FastifyRequest,
  reply: FastifyReply,
  edited: unknown,
  summary: string,
): Promise<{ revision: number; policy: Policy }> {
  const expected = expectedRevision(request);
  const parsed = parsePolicy(edited);
  if (!parsed.ok) {
    throw invalidPolicy('the change would make the policy invalid', parsed.issues);
  }
  // An edit that changes nothing stores no new revision.
  const current = await deputy.revisions.current(parsed.policy.workspace.id);
  checkCredentialEdits(current?.policy ?? null, parsed.policy);
  if (
    current &&
    current.revision === expected &&
    JSON.stringify(current.policy) === JSON.stringify(parsed.policy)
  ) {
    setRevisionTag(reply, current.revision);
    return { revision: current.revision, policy: current.policy };
  }
  // A secret that would follow its connection somewhere new is deleted before the new
  // destination takes effect, so no connection test in between can send it there.
  if (current) await dropMovedSecrets(deputy, current.policy, parsed.policy, callContext(request));
  const revision = await deputy.apply(
    parsed.policy,
    expected,
    summary,
    callContext(request),
    'admin.change',
  );
  setRevisionTag(reply, revision);
  return { revision, policy: parsed.policy };
}
