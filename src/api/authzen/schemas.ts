import { z } from 'zod';

/**
 * AuthZEN Authorization API 1.0 request shapes. Unknown fields are accepted and ignored, as the
 * specification requires; a missing or ill-typed known field is a 400.
 */
export const subjectSchema = z.looseObject({
  type: z.string(),
  id: z.string(),
  properties: z
    .looseObject({
      workspace: z.string().optional(),
      /** A channel id or `dm:<member id>`; omitted for the workspace scope. */
      channel: z.string().optional(),
    })
    .optional(),
});

export const resourceSchema = z.looseObject({
  type: z.string(),
  id: z.string(),
  properties: z.looseObject({}).optional(),
});

export const actionSchema = z.looseObject({
  name: z.string(),
  properties: z.looseObject({}).optional(),
});

export const contextSchema = z.looseObject({
  /** The member who asked the agent to act. */
  invoker: z.string().optional(),
});

export const evaluationRequestSchema = z.looseObject({
  subject: subjectSchema,
  action: actionSchema,
  resource: resourceSchema,
  context: contextSchema.optional(),
});

export const evaluationsRequestSchema = z.looseObject({
  subject: subjectSchema.optional(),
  action: actionSchema.optional(),
  resource: resourceSchema.optional(),
  context: contextSchema.optional(),
  evaluations: z
    .array(
      z.looseObject({
        subject: subjectSchema.optional(),
        action: actionSchema.optional(),
        resource: resourceSchema.optional(),
        context: contextSchema.optional(),
      }),
    )
    .max(1000)
    .optional(),
  options: z
    .looseObject({
      evaluations_semantic: z
        .enum(['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'])
        .optional(),
    })
    .optional(),
});

const pageSchema = z
  .looseObject({
    token: z.string().optional(),
    /** The previous response's `next_token`, as some revisions of the specification name it. */
    next_token: z.string().optional(),
    limit: z.number().int().min(1).max(1000).optional(),
  })
  .optional();

const searchSubjectSchema = z.looseObject({
  type: z.string(),
  id: z.string().optional(),
  properties: subjectSchema.shape.properties,
});

export const subjectSearchSchema = z.looseObject({
  subject: searchSubjectSchema,
  action: actionSchema,
  resource: resourceSchema,
  context: contextSchema.optional(),
  page: pageSchema,
});

export const resourceSearchSchema = z.looseObject({
  subject: subjectSchema,
  action: actionSchema,
  resource: z.looseObject({ type: z.string(), id: z.string().optional() }),
  context: contextSchema.optional(),
  page: pageSchema,
});

export const actionSearchSchema = z.looseObject({
  subject: subjectSchema,
  resource: resourceSchema,
  context: contextSchema.optional(),
  page: pageSchema,
});

export const decisionContextSchema = z.object({
  reason: z.string(),
  decision_id: z.string(),
  revision: z.number(),
  workspace: z.string(),
  scope: z.string(),
  identity: z.string().nullable(),
  invoker: z.string().nullable(),
  bundle: z.string().nullable(),
  attachment: z.string().nullable(),
  grant: z.string().nullable(),
  connection: z.string().nullable(),
  guardrail: z.string().nullable(),
  detail: z.string().nullable(),
});

export const evaluationResponseSchema = z.object({
  decision: z.boolean(),
  context: decisionContextSchema,
});

export const evaluationsResponseSchema = z.object({
  evaluations: z.array(evaluationResponseSchema),
});

export const searchResponseSchema = z.object({
  results: z.array(z.record(z.string(), z.string())),
  page: z.object({ next_token: z.string(), count: z.number(), total: z.number() }),
});

export type SubjectInput = z.output<typeof subjectSchema>;
export type ContextInput = z.output<typeof contextSchema>;
