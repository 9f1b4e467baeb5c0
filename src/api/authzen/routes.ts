import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';

import type { Deputy } from '../../deputy.js';
import { scopeName } from '../../engine/decide.js';
import { searchActions, searchAgents, searchResources } from '../../engine/search.js';
import type { DecisionRequest } from '../../engine/types.js';
import { callContext, requireRole } from '../auth.js';
import { badRequest } from '../errors.js';
import { toDecisionRequest, toEvaluationResponse } from './convert.js';
import {
  actionSearchSchema,
  evaluationRequestSchema,
  evaluationResponseSchema,
  evaluationsRequestSchema,
  evaluationsResponseSchema,
  resourceSearchSchema,
  searchResponseSchema,
  subjectSearchSchema,
} from './schemas.js';
import { paginate } from './page.js';

export interface AuthzenOptions {
  deputy: Deputy;
  /** Base URL published in the discovery document. */
  publicUrl: string;
}

/** OpenID AuthZEN Authorization API 1.0: discovery, evaluation, evaluations and search. */
export const authzenRoutes: FastifyPluginAsyncZod<AuthzenOptions> = async (
  app,
  { deputy, publicUrl },
) => {
  const pep = requireRole(deputy, ['pep', 'admin']);
  const tags = ['AuthZEN'];

  app.get('/.well-known/authzen-configuration', { schema: { tags } }, async () => ({
    policy_decision_point: publicUrl,
    access_evaluation_endpoint: `${publicUrl}/access/v1/evaluation`,
    access_evaluations_endpoint: `${publicUrl}/access/v1/evaluations`,
    search_subject_endpoint: `${publicUrl}/access/v1/search/subject`,
    search_resource_endpoint: `${publicUrl}/access/v1/search/resource`,
    search_action_endpoint: `${publicUrl}/access/v1/search/action`,
  }));

  app.post(
    '/access/v1/evaluation',
    {
      onRequest: pep,
      schema: { tags, body: evaluationRequestSchema, response: { 200: evaluationResponseSchema } },
    },
    async (request) => {
      const { subject, action, resource, context } = request.body;
      const decisionRequest = toDecisionRequest(deputy.engine, subject, action, resource, context);
      const [decision] = await deputy.decide([decisionRequest], callContext(request));
      return toEvaluationResponse(decision!);
    },
  );

  app.post(
    '/access/v1/evaluations',
    {
      onRequest: pep,
      schema: {
        tags,
        body: evaluationsRequestSchema,
        response: { 200: evaluationsResponseSchema.or(evaluationResponseSchema) },
      },
    },
    async (request) => {
      const body = request.body;
      const items = body.evaluations ?? [];
      if (items.length === 0) {
        // Without an evaluations array the request is a single evaluation of the defaults.
        const single = evaluationRequestSchema.safeParse(body);
        if (!single.success) {
          throw badRequest('subject, action and resource are required when evaluations is empty');
        }
        const { subject, action, resource, context } = single.data;
        const decisionRequest = toDecisionRequest(
          deputy.engine,
          subject,
          action,
          resource,
          context,
        );
        const [decision] = await deputy.decide([decisionRequest], callContext(request));
        return toEvaluationResponse(decision!);
      }

      const requests: DecisionRequest[] = items.map((item, index) => {
        const subject = item.subject ?? body.subject;
        const action = item.action ?? body.action;
        const resource = item.resource ?? body.resource;
        if (!subject || !action || !resource) {
          throw badRequest(
            `evaluations[${index}] has no subject, action or resource, and no default`,
          );
        }
        const context = item.context ?? body.context;
        return toDecisionRequest(deputy.engine, subject, action, resource, context);
      });
      const semantic = body.options?.evaluations_semantic ?? 'execute_all';
      const decisions = await deputy.decide(
        shortCircuit(deputy, requests, semantic),
        callContext(request),
      );
      return { evaluations: decisions.map(toEvaluationResponse) };
    },
  );

  app.post(
    '/access/v1/search/subject',
    {
      onRequest: pep,
      schema: { tags, body: subjectSearchSchema, response: { 200: searchResponseSchema } },
    },
    async (request) => {
      const { subject, action, resource, context, page } = request.body;
      const probe = toDecisionRequest(
        deputy.engine,
        { ...subject, type: 'agent' },
        action,
        resource,
        context,
      );
      const found =
        subject.type === 'agent'
          ? searchAgents(deputy.engine, probe, probe.action, probe.resource)
          : [];
      const results = found.map((decision) => ({ type: 'agent', id: decision.agent }));
      await recordSearch(deputy, request, 'search.subject', probe, results.length);
      return paginate(results, page);
    },
  );

  app.post(
    '/access/v1/search/resource',
    {
      onRequest: pep,
      schema: { tags, body: resourceSearchSchema, response: { 200: searchResponseSchema } },
    },
    async (request) => {
      const { subject, action, resource, context, page } = request.body;
      const probe = toDecisionRequest(
        deputy.engine,
        subject,
        action,
        { type: resource.type, id: '' },
        context,
      );
      const found = searchResources(deputy.engine, probe, probe.agent, probe.action, resource.type);
      const results = found.map((decision) => {
        const colon = decision.resource.indexOf(':');
        return { type: decision.resource.slice(0, colon), id: decision.resource.slice(colon + 1) };
      });
      await recordSearch(deputy, request, 'search.resource', probe, results.length);
      return paginate(results, page);
    },
  );

  app.post(
    '/access/v1/search/action',
    {
      onRequest: pep,
      schema: { tags, body: actionSearchSchema, response: { 200: searchResponseSchema } },
    },
    async (request) => {
      const { subject, resource, context, page } = request.body;
      const probe = toDecisionRequest(deputy.engine, subject, { name: '' }, resource, context);
      const found = searchActions(deputy.engine, probe, probe.agent, probe.resource);
      await recordSearch(deputy, request, 'search.action', probe, found.length);
      return paginate(
        found.map((decision) => ({ name: decision.action })),
        page,
      );
    },
  );
};

/**
 * Records a search under the calling key, since a subject search names no agent. Like a
 * decision, a search gets its response only once its record is written.
 */
async function recordSearch(
  deputy: Deputy,
  request: FastifyRequest,
  type: string,
  probe: DecisionRequest,
  count: number,
): Promise<void> {
  const call = callContext(request);
  await deputy.audit.append({
    type,
    workspace: probe.workspace,
    actor: call.actor,
    invoker: probe.invoker ?? null,
    scope: scopeName(probe.channel),
    action: probe.action === '' ? null : probe.action,
    resource: probe.resource.endsWith(':') ? null : probe.resource,
    request_id: call.requestId,
    detail: { agent: probe.agent === '' ? null : probe.agent, results: count },
  });
}

/**
 * Applies `deny_on_first_deny` and `permit_on_first_permit`: requests after the first deny
 * (or permit) are not evaluated, so they get no result and no record.
 */
function shortCircuit(
  deputy: Deputy,
  requests: DecisionRequest[],
  semantic: 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit',
): DecisionRequest[] {
  if (semantic === 'execute_all') return requests;
  const stopOn = semantic === 'permit_on_first_permit';
  for (let index = 0; index < requests.length; index++) {
    if (deputy.engine.decide(requests[index]!).allowed === stopOn)
      return requests.slice(0, index + 1);
  }
  return requests;
}
