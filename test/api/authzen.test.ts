/**
 * The AuthZEN Authorization API 1.0 endpoints on the acme example: discovery, evaluation,
 * evaluations, search, the transport rules, API key checks and the audit events they write.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  auditEventsAfter,
  type Harness,
  lastAuditSeq,
  PUBLIC_URL,
  SETUP_CALL,
  startHarness,
} from './harness.js';

type Json = Record<string, unknown>;

const HELPER = { type: 'agent', id: 'helper' };
const REPO_READ = { name: 'repo.read' };
const HANDBOOK = { type: 'repo', id: 'acme/handbook' };
const SECRETS = { type: 'repo', id: 'acme/secrets' };
const INFRA = { type: 'repo', id: 'acme/infra' };

const HANDBOOK_READ = { subject: HELPER, action: REPO_READ, resource: HANDBOOK };
const SECRETS_READ = { subject: HELPER, action: REPO_READ, resource: SECRETS };

/** `subject` of the helper agent in a channel. */
function helperIn(channel: string) {
  return { type: 'agent', id: 'helper', properties: { channel } };
}

/** Builds the AuthZEN `context` of a decision, with every field null unless given. */
function decisionContext(fields: Json) {
  return {
    reason: 'granted',
    decision_id: expect.any(String),
    revision: 1,
    workspace: 'acme',
    scope: 'workspace',
    identity: 'agent:helper',
    invoker: null,
    bundle: null,
    attachment: null,
    grant: null,
    connection: null,
    guardrail: null,
    detail: null,
    ...fields,
  };
}

const HANDBOOK_GRANT = {
  bundle: 'baseline',
  attachment: 'workspace/baseline',
  grant: 'read-handbook',
  connection: 'github',
};

/** Chain fields that every stored event has and no test predicts. */
const CHAIN_FIELDS = {
  seq: expect.any(Number),
  time: expect.any(String),
  prev: expect.stringMatching(/^[0-9a-f]{64}$/),
  hash: expect.stringMatching(/^[0-9a-f]{64}$/),
};

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness.close();
});

function post(url: string, payload: unknown, headers: Record<string, string> = {}) {
  return harness.app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${harness.keys.pep}`, ...headers },
    payload: payload as Json,
  });
}

const evaluate = (payload: unknown, headers?: Record<string, string>) =>
  post('/access/v1/evaluation', payload, headers);

const evaluations = (payload: unknown) => post('/access/v1/evaluations', payload);

describe('discovery', () => {
  it('lists every endpoint under the public URL', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: '/.well-known/authzen-configuration',
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      policy_decision_point: PUBLIC_URL,
      access_evaluation_endpoint: `${PUBLIC_URL}/access/v1/evaluation`,
      access_evaluations_endpoint: `${PUBLIC_URL}/access/v1/evaluations`,
      search_subject_endpoint: `${PUBLIC_URL}/access/v1/search/subject`,
      search_resource_endpoint: `${PUBLIC_URL}/access/v1/search/resource`,
      search_action_endpoint: `${PUBLIC_URL}/access/v1/search/action`,
    });
  });
});

describe('evaluation', () => {
  it('allows a granted request', async () => {
    const response = await evaluate(HANDBOOK_READ);

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ decision: true, context: decisionContext(HANDBOOK_GRANT) });
  });

  it('allows an identity-aware write for a permitted invoker', async () => {
    const response = await evaluate({
      subject: helperIn('C02ENG'),
      action: { name: 'repo.write' },
      resource: { type: 'repo', id: 'acme/api' },
      context: { invoker: 'U02BOB' },
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      decision: true,
      context: decisionContext({
        scope: 'channel:C02ENG',
        invoker: 'U02BOB',
        bundle: 'engineering',
        attachment: 'channel:C02ENG/engineering',
        grant: 'code-write',
        connection: 'github',
      }),
    });
  });

  it('denies with HTTP 200 and the guardrail', async () => {
    const response = await evaluate(SECRETS_READ);

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      decision: false,
      context: decisionContext({ reason: 'forbidden_by_guardrail', guardrail: 'no-secrets-repo' }),
    });
  });

  it('denies pending approval with the grant', async () => {
    const response = await evaluate({
      subject: helperIn('C02ENG'),
      action: { name: 'repo.admin' },
      resource: INFRA,
      context: { invoker: 'U01ALICE' },
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      decision: false,
      context: decisionContext({
        reason: 'approval_required',
        scope: 'channel:C02ENG',
        invoker: 'U01ALICE',
        bundle: 'engineering',
        attachment: 'channel:C02ENG/engineering',
        grant: 'infra-admin',
        connection: 'github',
      }),
    });
  });

  it('denies an invoker the channel does not permit', async () => {
    const response = await evaluate({
      subject: helperIn('C02ENG'),
      action: REPO_READ,
      resource: { type: 'repo', id: 'acme/api' },
      context: { invoker: 'U03CAROL' },
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      decision: false,
      context: decisionContext({
        reason: 'invoker_not_permitted',
        scope: 'channel:C02ENG',
        invoker: 'U03CAROL',
      }),
    });
  });

  it('denies an unknown workspace like an unknown agent', async () => {
    const response = await evaluate({
      ...HANDBOOK_READ,
      subject: { ...HELPER, properties: { workspace: 'globex' } },
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      decision: false,
      context: decisionContext({
        reason: 'agent_unknown',
        revision: 0,
        workspace: 'globex',
        identity: null,
      }),
    });
  });

  it('ignores unknown fields', async () => {
    const response = await evaluate({
      subject: { ...HELPER, department: 'support', properties: { shoe_size: 44 } },
      action: { ...REPO_READ, properties: { method: 'GET' } },
      resource: { ...HANDBOOK, owner: 'acme' },
      context: { time: '2026-01-01T00:00:00Z' },
      trace: { id: 7 },
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ decision: true, context: decisionContext(HANDBOOK_GRANT) });
  });
});

describe('transport rules', () => {
  const missing = [
    ['subject', { action: REPO_READ, resource: HANDBOOK }],
    ['action', { subject: HELPER, resource: HANDBOOK }],
    ['resource', { subject: HELPER, action: REPO_READ }],
  ] as const;

  it.each(missing)('rejects a request without %s', async (field, body) => {
    const response = await evaluate(body);

    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({
      error: 'invalid_request',
      issues: [{ path: `body.${field}`, message: expect.any(String) }],
    });
  });

  const illTyped = [
    ['body.subject.id', { ...HANDBOOK_READ, subject: { type: 'agent', id: 7 } }],
    ['body.subject.type', { ...HANDBOOK_READ, subject: { type: null, id: 'helper' } }],
    ['body.action.name', { ...HANDBOOK_READ, action: { name: ['repo.read'] } }],
    ['body.resource.id', { ...HANDBOOK_READ, resource: { type: 'repo', id: { path: 'x' } } }],
    ['body.context.invoker', { ...HANDBOOK_READ, context: { invoker: 42 } }],
    ['body.subject', { ...HANDBOOK_READ, subject: 'agent:helper' }],
  ] as const;

  it.each(illTyped)('rejects an ill-typed %s', async (path, body) => {
    const response = await evaluate(body);

    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({
      error: 'invalid_request',
      issues: [{ path, message: expect.any(String) }],
    });
  });

  it('rejects malformed JSON', async () => {
    const response = await evaluate('{"subject": {"type": "agent",', {
      'content-type': 'application/json',
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBe('invalid_request');
  });

  it('rejects an empty JSON body', async () => {
    const response = await evaluate('', { 'content-type': 'application/json' });

    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBe('invalid_request');
  });

  it('rejects an empty body without content type', async () => {
    const response = await evaluate('');

    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBe('invalid_request');
  });

  it('rejects a text/plain body', async () => {
    const response = await evaluate(JSON.stringify(HANDBOOK_READ), {
      'content-type': 'text/plain',
    });

    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: 'invalid_request',
      error_description: 'the request body must be application/json',
    });
  });

  it('rejects a body without content type', async () => {
    const response = await evaluate(JSON.stringify(HANDBOOK_READ));

    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: 'invalid_request',
      error_description: 'the request body must be application/json',
    });
  });

  it('accepts a JSON content type with a charset', async () => {
    const response = await evaluate(JSON.stringify(HANDBOOK_READ), {
      'content-type': 'application/json; charset=utf-8',
    });

    expect(response.statusCode).toBe(200);
    expect(response.json().decision).toBe(true);
  });

  it('writes no decision for a rejected request', async () => {
    const before = await lastAuditSeq(harness.deputy);

    await evaluate({ subject: HELPER, action: REPO_READ });
    await evaluate('{', { 'content-type': 'application/json' });

    expect(await auditEventsAfter(harness.deputy, before)).toEqual([]);
  });

  it('echoes the X-Request-ID it was given', async () => {
    const response = await evaluate(HANDBOOK_READ, { 'x-request-id': 'pep-7f3a-0001' });

    expect(response.statusCode).toBe(200);
    expect(response.headers['x-request-id']).toBe('pep-7f3a-0001');
  });

  it('generates an X-Request-ID when none is given', async () => {
    const first = await evaluate(HANDBOOK_READ);
    const second = await evaluate(HANDBOOK_READ);

    expect(first.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
  });

  it('replaces an X-Request-ID with control characters', async () => {
    const response = await evaluate(HANDBOOK_READ, { 'x-request-id': 'a b' });

    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('echoes the X-Request-ID on errors', async () => {
    const response = await evaluate({}, { 'x-request-id': 'pep-7f3a-0002' });

    expect(response.statusCode).toBe(400);
    expect(response.headers['x-request-id']).toBe('pep-7f3a-0002');
  });
});

describe('evaluations', () => {
  it('applies defaults and per-item overrides', async () => {
    const response = await evaluations({
      subject: HELPER,
      action: REPO_READ,
      context: { invoker: 'U02BOB' },
      evaluations: [
        { resource: HANDBOOK },
        { resource: SECRETS },
        { subject: helperIn('C02ENG'), action: { name: 'repo.write' }, resource: INFRA },
        {
          subject: helperIn('C02ENG'),
          action: { name: 'repo.write' },
          resource: INFRA,
          context: { invoker: 'U03CAROL' },
        },
      ],
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      evaluations: [
        { decision: true, context: decisionContext({ ...HANDBOOK_GRANT, invoker: 'U02BOB' }) },
        {
          decision: false,
          context: decisionContext({
            reason: 'forbidden_by_guardrail',
            invoker: 'U02BOB',
            guardrail: 'no-secrets-repo',
          }),
        },
        {
          decision: true,
          context: decisionContext({
            scope: 'channel:C02ENG',
            invoker: 'U02BOB',
            bundle: 'engineering',
            attachment: 'channel:C02ENG/engineering',
            grant: 'code-write',
            connection: 'github',
          }),
        },
        {
          decision: false,
          context: decisionContext({
            reason: 'invoker_not_permitted',
            scope: 'channel:C02ENG',
            invoker: 'U03CAROL',
          }),
        },
      ],
    });
  });

  // allow, deny, allow, deny, allow
  const mixed = [
    { resource: HANDBOOK },
    { resource: SECRETS },
    { resource: HANDBOOK },
    { resource: SECRETS },
    { resource: HANDBOOK },
  ];
  // deny, deny, allow, deny
  const denyFirst = [
    { resource: SECRETS },
    { resource: SECRETS },
    { resource: HANDBOOK },
    mixed[1],
  ];

  const semantics = [
    ['execute_all', mixed, [true, false, true, false, true]],
    ['deny_on_first_deny', mixed, [true, false]],
    ['permit_on_first_permit', denyFirst, [false, false, true]],
  ] as const;

  it.each(semantics)('stops as %s requires', async (semantic, items, expected) => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluations({
      subject: HELPER,
      action: REPO_READ,
      evaluations: items,
      options: { evaluations_semantic: semantic },
    });

    expect(response.statusCode).toBe(200);
    const results = response.json().evaluations as { decision: boolean }[];
    expect(results.map((result) => result.decision)).toEqual(expected);
    const recorded = await auditEventsAfter(harness.deputy, before);
    expect(recorded.map((event) => event.decision)).toEqual(
      expected.map((allowed) => (allowed ? 'allow' : 'deny')),
    );
  });

  it('runs every item without options', async () => {
    const response = await evaluations({ subject: HELPER, action: REPO_READ, evaluations: mixed });

    expect(response.statusCode).toBe(200);
    expect(response.json().evaluations).toHaveLength(5);
  });

  it('rejects an unknown semantic', async () => {
    const response = await evaluations({
      ...HANDBOOK_READ,
      evaluations: [{}],
      options: { evaluations_semantic: 'first_applicable' },
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().issues[0].path).toBe('body.options.evaluations_semantic');
  });

  it('answers a single evaluation without an array', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluations(SECRETS_READ);

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      decision: false,
      context: decisionContext({ reason: 'forbidden_by_guardrail', guardrail: 'no-secrets-repo' }),
    });
    expect(await auditEventsAfter(harness.deputy, before)).toHaveLength(1);
  });

  it('answers a single evaluation for an empty array', async () => {
    const response = await evaluations({ ...HANDBOOK_READ, evaluations: [] });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ decision: true, context: decisionContext(HANDBOOK_GRANT) });
  });

  it('rejects an item with no subject and no default', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluations({
      action: REPO_READ,
      resource: HANDBOOK,
      evaluations: [{ subject: HELPER }, {}],
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().error_description).toBe(
      'evaluations[1] has no subject, action or resource, and no default',
    );
    expect(await auditEventsAfter(harness.deputy, before)).toEqual([]);
  });

  it('rejects no array and no defaults', async () => {
    const response = await evaluations({ subject: HELPER });

    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBe('invalid_request');
  });
});

describe('search', () => {
  /** Follows `next_token` until the last page and returns every page. */
  async function allPages(url: string, body: Json, limit: number) {
    const pages: { results: Json[]; page: { next_token: string; count: number } }[] = [];
    let token: string | undefined;
    do {
      const page = token === undefined ? { limit } : { limit, token };
      const response = await post(url, { ...body, page });
      expect(response.statusCode).toBe(200);
      pages.push(response.json());
      token = pages.at(-1)!.page.next_token;
    } while (token !== '' && pages.length < 20);
    return pages;
  }

  it('accepts next_token as the page token', async () => {
    const body = { subject: helperIn('C02ENG'), action: REPO_READ, resource: { type: 'repo' } };
    const first = (
      await post('/access/v1/search/resource', { ...body, page: { limit: 2 } })
    ).json();

    const second = await post('/access/v1/search/resource', {
      ...body,
      page: { limit: 2, next_token: first.page.next_token },
    });

    expect(second.statusCode).toBe(200);
    expect(second.json().results).toEqual([
      { type: 'repo', id: 'acme/handbook' },
      { type: 'repo', id: 'acme/infra' },
    ]);
  });

  it('finds the agents that an evaluation allows', async () => {
    const response = await post('/access/v1/search/subject', {
      subject: { type: 'agent' },
      action: REPO_READ,
      resource: HANDBOOK,
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      results: [{ type: 'agent', id: 'helper' }],
      page: { next_token: '', count: 1, total: 1 },
    });
    const check = await evaluate(HANDBOOK_READ);
    expect(check.json().decision).toBe(true);
  });

  it('finds no agent for a guarded resource', async () => {
    const response = await post('/access/v1/search/subject', {
      subject: { type: 'agent' },
      action: REPO_READ,
      resource: SECRETS,
    });

    expect(response.statusCode).toBe(200);
    expect(response.json().results).toEqual([]);
    expect((await evaluate(SECRETS_READ)).json().decision).toBe(false);
  });

  it('pages resources that evaluations allow', async () => {
    const body = { subject: helperIn('C02ENG'), action: REPO_READ, resource: { type: 'repo' } };

    const pages = await allPages('/access/v1/search/resource', body, 2);

    expect(pages.map((page) => page.page.count)).toEqual([2, 2, 1]);
    expect(pages.map((page) => page.page.next_token === '')).toEqual([false, false, true]);
    const found = pages.flatMap((page) => page.results);
    expect(found).toEqual([
      { type: 'repo', id: 'acme/api' },
      { type: 'repo', id: 'acme/contracts' },
      { type: 'repo', id: 'acme/handbook' },
      { type: 'repo', id: 'acme/infra' },
      { type: 'repo', id: 'acme/web' },
    ]);
    for (const resource of found) {
      const check = await evaluate({ subject: helperIn('C02ENG'), action: REPO_READ, resource });
      expect(check.json().decision, `repo.read on ${resource.id}`).toBe(true);
    }
    const secrets = await evaluate({
      subject: helperIn('C02ENG'),
      action: REPO_READ,
      resource: SECRETS,
    });
    expect(secrets.json().decision).toBe(false);
  });

  it('pages actions that evaluations allow', async () => {
    const body = { subject: helperIn('C02ENG'), resource: INFRA };

    const pages = await allPages('/access/v1/search/action', body, 2);

    expect(pages.map((page) => page.page.count)).toEqual([2, 1]);
    const found = pages.flatMap((page) => page.results);
    expect(found).toEqual([{ name: 'issue.read' }, { name: 'issue.write' }, { name: 'repo.read' }]);
    for (const action of found) {
      const check = await evaluate({ subject: helperIn('C02ENG'), action, resource: INFRA });
      expect(check.json().decision, `${action.name} on acme/infra`).toBe(true);
    }
    for (const name of ['repo.write', 'repo.admin']) {
      const check = await evaluate({
        subject: helperIn('C02ENG'),
        action: { name },
        resource: INFRA,
      });
      expect(check.json().decision, `${name} on acme/infra`).toBe(false);
    }
  });

  it('records the search, not decisions', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await post('/access/v1/search/action', {
      subject: helperIn('C02ENG'),
      resource: INFRA,
    });

    const events = await auditEventsAfter(harness.deputy, before);
    expect(events.filter((event) => event.type === 'decision')).toEqual([]);
    expect(events).toEqual([
      {
        ...CHAIN_FIELDS,
        type: 'search.action',
        workspace: 'acme',
        actor: { type: 'api_key', id: harness.keyIds.pep },
        identity: null,
        invoker: null,
        scope: 'channel:C02ENG',
        action: null,
        resource: 'repo:acme/infra',
        decision: null,
        reason: null,
        bundle: null,
        grant: null,
        connection: null,
        revision: null,
        decision_id: null,
        request_id: response.headers['x-request-id'],
        detail: { agent: 'helper', results: 3 },
      },
    ]);
  });

  it('rejects an invalid page token', async () => {
    const response = await post('/access/v1/search/action', {
      subject: HELPER,
      resource: HANDBOOK,
      page: { token: 'not-a-token' },
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().error_description).toBe(
      'page.token is invalid: pass the next_token of a previous response',
    );
  });

  it('rejects a page limit of 0', async () => {
    const response = await post('/access/v1/search/action', {
      subject: HELPER,
      resource: HANDBOOK,
      page: { limit: 0 },
    });

    expect(response.statusCode).toBe(400);
    expect(response.json().issues[0].path).toBe('body.page.limit');
  });
});

describe('API keys', () => {
  const UNAUTHORIZED = {
    error: 'unauthorized',
    error_description: 'a valid API key is required: Authorization: Bearer <key>',
  };

  it('rejects a request without a key', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      payload: HANDBOOK_READ,
    });

    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="deputy"');
    expect(response.json()).toEqual(UNAUTHORIZED);
  });

  it('rejects a garbage key', async () => {
    const response = await evaluate(HANDBOOK_READ, { authorization: 'Bearer not-a-deputy-key' });

    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual(UNAUTHORIZED);
  });

  it('rejects a key with a wrong secret', async () => {
    const [, id] = /^dpy_([a-f0-9]{16})_/.exec(harness.keys.pep)!;
    const forged = `dpy_${id}_${'A'.repeat(43)}`;

    const response = await evaluate(HANDBOOK_READ, { authorization: `Bearer ${forged}` });

    expect(response.statusCode).toBe(401);
  });

  it('rejects a revoked key', async () => {
    const created = await harness.deputy.createKey('pep', 'revoked soon', SETUP_CALL);
    const authorization = `Bearer ${created.key}`;
    expect((await evaluate(HANDBOOK_READ, { authorization })).statusCode).toBe(200);

    await harness.deputy.revokeKey(created.id, SETUP_CALL);
    const response = await evaluate(HANDBOOK_READ, { authorization });

    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual(UNAUTHORIZED);
  });

  it('forbids an auditor key to evaluate', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluate(HANDBOOK_READ, {
      authorization: `Bearer ${harness.keys.auditor}`,
    });

    expect(response.statusCode).toBe(403);
    expect(response.json()).toEqual({
      error: 'forbidden',
      error_description: 'this endpoint needs the pep or admin role',
    });
    expect(await auditEventsAfter(harness.deputy, before)).toEqual([]);
  });

  it('lets an admin key evaluate', async () => {
    const response = await evaluate(HANDBOOK_READ, {
      authorization: `Bearer ${harness.keys.admin}`,
    });

    expect(response.statusCode).toBe(200);
    expect(response.json().decision).toBe(true);
  });

  // RFC 9110 section 11.1: the authentication scheme name is case-insensitive.
  it('accepts a lowercase bearer scheme', async () => {
    const response = await evaluate(HANDBOOK_READ, {
      authorization: `bearer ${harness.keys.pep}`,
    });

    expect(response.statusCode).toBe(200);
  });
});

describe('audit events', () => {
  it('records an allow with every field', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluate(HANDBOOK_READ, { 'x-request-id': 'audit-allow-1' });

    const events = await auditEventsAfter(harness.deputy, before);
    expect(events).toEqual([
      {
        ...CHAIN_FIELDS,
        type: 'decision',
        workspace: 'acme',
        actor: { type: 'agent', id: 'helper' },
        identity: 'agent:helper',
        invoker: null,
        scope: 'workspace',
        action: 'repo.read',
        resource: 'repo:acme/handbook',
        decision: 'allow',
        reason: 'granted',
        bundle: 'baseline',
        grant: 'read-handbook',
        connection: 'github',
        revision: 1,
        decision_id: response.json().context.decision_id,
        request_id: 'audit-allow-1',
        detail: { caller: harness.keyIds.pep },
      },
    ]);
  });

  it('records a deny with the invoker and scope', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluate({
      subject: helperIn('C02ENG'),
      action: { name: 'repo.admin' },
      resource: INFRA,
      context: { invoker: 'U01ALICE' },
    });

    const events = await auditEventsAfter(harness.deputy, before);
    expect(events).toEqual([
      {
        ...CHAIN_FIELDS,
        type: 'decision',
        workspace: 'acme',
        actor: { type: 'agent', id: 'helper' },
        identity: 'agent:helper',
        invoker: 'U01ALICE',
        scope: 'channel:C02ENG',
        action: 'repo.admin',
        resource: 'repo:acme/infra',
        decision: 'deny',
        reason: 'approval_required',
        bundle: 'engineering',
        grant: 'infra-admin',
        connection: 'github',
        revision: 1,
        decision_id: response.json().context.decision_id,
        request_id: response.headers['x-request-id'],
        detail: { caller: harness.keyIds.pep },
      },
    ]);
  });

  it('records the guardrail of a deny', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluate(SECRETS_READ);

    const [event] = await auditEventsAfter(harness.deputy, before);
    expect(event).toMatchObject({
      type: 'decision',
      decision: 'deny',
      reason: 'forbidden_by_guardrail',
      bundle: null,
      grant: null,
      connection: null,
      decision_id: response.json().context.decision_id,
      detail: { caller: harness.keyIds.pep, guardrail: 'no-secrets-repo' },
    });
  });

  it('records one event per evaluated item', async () => {
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluations({
      subject: HELPER,
      action: REPO_READ,
      evaluations: [{ resource: HANDBOOK }, { resource: SECRETS }],
    });

    const events = await auditEventsAfter(harness.deputy, before);
    const requestId = response.headers['x-request-id'];
    const results = response.json().evaluations as { context: { decision_id: string } }[];
    expect(events.map((event) => event.decision_id)).toEqual(
      results.map((result) => result.context.decision_id),
    );
    expect(events.map((event) => event.request_id)).toEqual([requestId, requestId]);
    expect(events.map((event) => event.decision)).toEqual(['allow', 'deny']);
  });

  it('records a failed authentication without the secret', async () => {
    const secret = 'S3cretPartThatMustNeverBeStored_0123456789ab';
    const key = `dpy_0123456789abcdef_${secret}`;
    const before = await lastAuditSeq(harness.deputy);

    const response = await evaluate(HANDBOOK_READ, {
      authorization: `Bearer ${key}`,
      'x-request-id': 'auth-fail-1',
    });

    expect(response.statusCode).toBe(401);
    const events = await auditEventsAfter(harness.deputy, before);
    expect(events).toEqual([
      {
        ...CHAIN_FIELDS,
        type: 'auth.failure',
        workspace: null,
        actor: { type: 'api_key', id: 'anonymous' },
        identity: null,
        invoker: null,
        scope: null,
        action: null,
        resource: null,
        decision: null,
        reason: null,
        bundle: null,
        grant: null,
        connection: null,
        revision: null,
        decision_id: null,
        request_id: 'auth-fail-1',
        detail: {
          problem: 'invalid',
          method: 'POST',
          route: '/access/v1/evaluation',
          claimed_key_id: '0123456789abcdef',
        },
      },
    ]);
    expect(JSON.stringify(events)).not.toContain(secret);
  });

  it('records a missing key as anonymous', async () => {
    const before = await lastAuditSeq(harness.deputy);

    await harness.app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      payload: HANDBOOK_READ,
    });

    const events = await auditEventsAfter(harness.deputy, before);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'auth.failure',
      actor: { type: 'api_key', id: 'anonymous' },
      detail: {
        problem: 'missing',
        method: 'POST',
        route: '/access/v1/evaluation',
        claimed_key_id: null,
      },
    });
  });

  it('records a revoked key by id only', async () => {
    const created = await harness.deputy.createKey('pep', 'revoked', SETUP_CALL);
    await harness.deputy.revokeKey(created.id, SETUP_CALL);
    const secret = created.key.slice(`dpy_${created.id}_`.length);
    const before = await lastAuditSeq(harness.deputy);

    await evaluate(HANDBOOK_READ, { authorization: `Bearer ${created.key}` });

    const events = await auditEventsAfter(harness.deputy, before);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'auth.failure',
      actor: { type: 'api_key', id: 'anonymous' },
      detail: { problem: 'invalid', claimed_key_id: created.id },
    });
    expect(JSON.stringify(events)).not.toContain(secret);
  });
});
