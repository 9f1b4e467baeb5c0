/**
 * Upstream MCP servers that misbehave: one that echoes its environment, credential included,
 * and one that cannot start because its credential is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connectionSchema } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';
import {
  auditEventsAfter,
  connect,
  type GatewayTestEnvironment,
  lastAuditSeq,
  rejectionOf,
  startGatewayEnvironment,
  textOf,
} from './support.js';

const SECRET = 'everything-secret-9f3b27c1';

let environment: GatewayTestEnvironment;

beforeAll(async () => {
  process.env.DEPUTY_TEST_EVERYTHING_TOKEN = SECRET;
  environment = await startGatewayEnvironment();

  const { deputy } = environment.acme;
  const current = (await deputy.revisions.current('acme'))!;
  const policy = structuredClone(current.policy);
  const everything = ['node', 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'];
  policy.connections.push(
    connectionSchema.parse({
      id: 'everything',
      kind: 'mcp',
      command: everything,
      credential: { secret: 'env:DEPUTY_TEST_EVERYTHING_TOKEN', scheme: 'env', name: 'API_TOKEN' },
    }),
    connectionSchema.parse({
      id: 'broken',
      kind: 'mcp',
      command: everything,
      credential: { secret: 'env:DEPUTY_TEST_UNSET_TOKEN', scheme: 'env', name: 'API_TOKEN' },
    }),
  );
  const baseline = policy.bundles.find((bundle) => bundle.id === 'baseline')!;
  baseline.tools.push('everything/**', 'broken/**');
  baseline.prompts.push('everything/simple-prompt');
  const parsed = parsePolicy(policy);
  if (!parsed.ok) throw new Error(parsed.issues.map((issue) => issue.message).join('; '));
  const call = { actor: { type: 'cli' as const, id: 'test' }, requestId: null };
  await deputy.apply(parsed.policy, current.revision, 'test', call);
});

afterAll(async () => {
  await environment?.close();
  delete process.env.DEPUTY_TEST_EVERYTHING_TOKEN;
});

describe('upstream prompts', () => {
  it('lists only the granted prompt', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });

    const { prompts } = await client.listPrompts();

    expect(prompts.map((prompt) => prompt.name)).toEqual(['everything__simple-prompt']);
  });

  it('gets a granted prompt and records it', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });
    const before = await lastAuditSeq(environment);

    const result = await client.getPrompt({ name: 'everything__simple-prompt' });

    expect(result.messages.length).toBeGreaterThan(0);
    const events = (await auditEventsAfter(environment, before)).filter(
      (event) => event.type === 'prompt.get',
    );
    expect(
      events.map((event) => [event.decision, event.reason, event.resource, event.action]),
    ).toEqual([['allow', 'granted', 'prompt:everything/simple-prompt', 'prompt.get']]);
  });

  it('denies a prompt that is not granted', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });

    const error = await rejectionOf(
      client.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Paris' } }),
    );

    expect(error.code).toBe(-32001);
    expect(error.data).toMatchObject({ reason: 'no_matching_grant' });
  });
});

describe('upstream credentials', () => {
  it('redacts the credential from results', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });

    const result = await client.callTool({ name: 'everything__get-env', arguments: {} });

    expect(textOf(result)).toContain('API_TOKEN');
    expect(textOf(result)).toContain('[REDACTED]');
    expect(JSON.stringify(result)).not.toContain(SECRET);
  });

  it('reports an upstream that cannot start', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });
    const before = await lastAuditSeq(environment);

    const error = await rejectionOf(client.callTool({ name: 'broken__echo', arguments: {} }));

    expect(error.code).toBe(-32603);
    expect(error.message).toContain(
      'broken__echo is unavailable: connection broken could not be started',
    );
    const events = (await auditEventsAfter(environment, before)).filter(
      (event) => event.type === 'tool.call',
    );
    expect(events.map((event) => [event.decision, event.reason, event.resource])).toEqual([
      ['deny', 'upstream_unavailable', 'tool:broken/echo'],
    ]);
  });

  it('keeps the secret out of the audit log', async () => {
    const events = await auditEventsAfter(environment, 0);

    expect(JSON.stringify(events)).not.toContain(SECRET);
  });
});
