/**
 * Alternative spellings of a guarded resource id, sent through the AuthZEN evaluations API.
 * A URL parser or a case-folding system downstream reads `host:0x7f.1` as 127.0.0.1 and
 * `repo:lab/ſecrets` as lab/secrets, so each such spelling must be denied, never matched by
 * the wide grant while missing the guardrail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Policy } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';
import { type Harness, SETUP_CALL, startHarness } from '../api/harness.js';

/**
 * Builds a workspace whose agent may fetch any host and read any repository, minus guarded ones.
 * Host ids are case-insensitive, and so are repository ids unless `caseSensitiveRepos`.
 */
function labPolicy(id = 'lab', caseSensitiveRepos = false): Policy {
  const parsed = parsePolicy({
    version: 1,
    workspace: { id, case_insensitive_types: caseSensitiveRepos ? ['host'] : ['repo', 'host'] },
    agents: [{ id: 'scout' }],
    bundles: [
      {
        id: 'wide',
        grants: [
          { id: 'fetch-any', actions: ['web.fetch'], resources: ['host:**'] },
          { id: 'read-lab', actions: ['repo.read'], resources: ['repo:lab/*'] },
        ],
      },
    ],
    scopes: { workspace: { bundles: ['wide'] } },
    guardrails: [
      { id: 'no-metadata', actions: ['**'], resources: ['host:169.254.169.254'] },
      { id: 'no-loopback', actions: ['**'], resources: ['host:127.0.0.1'] },
      { id: 'no-secrets', actions: ['**'], resources: ['repo:lab/secrets'] },
    ],
  });
  if (!parsed.ok) throw new Error(parsed.issues.map((issue) => issue.message).join('; '));
  return parsed.policy;
}

const ACTION_OF_TYPE: Record<string, string> = { host: 'web.fetch', repo: 'repo.read' };

/**
 * Spellings that a URL parser or a case-folding system reads as 169.254.169.254, 127.0.0.1,
 * lab/secrets or lab/infra.
 */
const ALTERNATIVE_SPELLINGS = [
  'host:2852039166',
  'host:0xa9fea9fe',
  'host:0251.0376.0251.0376',
  'host:169.254.43518',
  'host:127.1',
  'host:0x7f.1',
  'host:127.0.0.01',
  'repo:lab/ſecrets',
  'repo:lab/ınfra',
  'repo:lab/ｓecrets',
  'repo:lab/secrets ',
  'repo:lab/secrets\u00a0',
];

const GUARDED = [
  ['host:169.254.169.254', 'no-metadata'],
  ['host:127.0.0.1', 'no-loopback'],
  ['repo:lab/secrets', 'no-secrets'],
] as const;

interface Evaluation {
  decision: boolean;
  context: { reason: string; guardrail: string | null; grant: string | null };
}

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness({ policy: labPolicy() });
  await harness.deputy.apply(labPolicy('lab-cs', true), 0, 'test', SETUP_CALL);
});

afterAll(async () => {
  await harness.close();
});

/** Evaluates `web.fetch` or `repo.read` for scout on each resource in one evaluations call. */
async function evaluate(resources: readonly string[], workspace = 'lab'): Promise<Evaluation[]> {
  const evaluations = resources.map((resource) => {
    const colon = resource.indexOf(':');
    const type = resource.slice(0, colon);
    return {
      action: { name: ACTION_OF_TYPE[type] },
      resource: { type, id: resource.slice(colon + 1) },
    };
  });
  const response = await harness.app.inject({
    method: 'POST',
    url: '/access/v1/evaluations',
    headers: { authorization: `Bearer ${harness.keys.pep}` },
    payload: { subject: { type: 'agent', id: 'scout', properties: { workspace } }, evaluations },
  });
  expect(response.statusCode).toBe(200);
  return response.json().evaluations as Evaluation[];
}

describe('alternative id spellings', () => {
  it.each(ALTERNATIVE_SPELLINGS)('denies %j', async (resource) => {
    const [result] = await evaluate([resource]);

    expect(result!.decision).toBe(false);
    expect(['invalid_request', 'forbidden_by_guardrail']).toContain(result!.context.reason);
    expect(result!.context.grant).toBeNull();
  });

  it('denies every spelling as invalid_request', async () => {
    const results = await evaluate(ALTERNATIVE_SPELLINGS);

    expect(results.map((result) => [result.decision, result.context.reason])).toEqual(
      ALTERNATIVE_SPELLINGS.map(() => [false, 'invalid_request']),
    );
  });
});

describe('case-sensitive repositories', () => {
  it('denies edge white space', async () => {
    const results = await evaluate(['repo:lab/secrets ', 'repo:lab/secrets\u00a0'], 'lab-cs');

    expect(results.map((result) => [result.decision, result.context.reason])).toEqual([
      [false, 'invalid_request'],
      [false, 'invalid_request'],
    ]);
  });

  it('denies the canonical id by guardrail', async () => {
    const [result] = await evaluate(['repo:lab/secrets'], 'lab-cs');

    expect(result!.context.reason).toBe('forbidden_by_guardrail');
  });
});

describe('canonical ids', () => {
  it.each(GUARDED)('denies %s by guardrail', async (resource, guardrail) => {
    const [result] = await evaluate([resource]);

    expect(result!.decision).toBe(false);
    expect(result!.context.reason).toBe('forbidden_by_guardrail');
    expect(result!.context.guardrail).toBe(guardrail);
  });

  it('denies uppercase spellings by guardrail', async () => {
    const results = await evaluate(['repo:LAB/Secrets', 'repo:lab/SECRETS']);

    expect(results.map((result) => result.context.reason)).toEqual([
      'forbidden_by_guardrail',
      'forbidden_by_guardrail',
    ]);
  });

  it('grants an unrelated host', async () => {
    const [result] = await evaluate(['host:docs.lab.example']);

    expect(result!.decision).toBe(true);
    expect(result!.context.reason).toBe('granted');
    expect(result!.context.grant).toBe('fetch-any');
  });

  it('grants an unrelated repository', async () => {
    const [result] = await evaluate(['repo:lab/infra']);

    expect(result!.decision).toBe(true);
    expect(result!.context.grant).toBe('read-lab');
  });
});
