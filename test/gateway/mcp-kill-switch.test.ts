/**
 * The kill switch seen from a connected MCP client: disabling the agent through the admin API
 * fails the next request of a client that is already connected, on both protocol revisions,
 * and stops new gateway tokens.
 */
import { type Client, SdkErrorCode, SdkHttpError } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  auditEventsAfter,
  connect,
  type GatewayTestEnvironment,
  lastAuditSeq,
  rejectionOf,
  startGatewayEnvironment,
  tokenFor,
  TokenRequestError,
} from './support.js';

const INVALID_TOKEN_BODY =
  '{"error":"invalid_token","error_description":"the access token is invalid, expired or revoked"}';

let environment: GatewayTestEnvironment;
let legacy: Client;
let modern: Client;
let disabled: Response;
let afterDisable: number;

beforeAll(async () => {
  environment = await startGatewayEnvironment();
  legacy = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' }, 'legacy');
  modern = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' }, 'modern');
  // Both clients work before the disable.
  await legacy.listTools();
  await modern.listTools();

  disabled = await fetch(`${environment.acme.url}/admin/v1/workspaces/acme/agents/helper/disable`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${environment.acme.adminKey}`,
      'content-type': 'application/json',
    },
    body: '{}',
  });
  afterDisable = await lastAuditSeq(environment);
});

afterAll(async () => {
  await environment?.close();
});

it('disable succeeds', async () => {
  expect(disabled.status).toBe(200);
  expect(await disabled.json()).toEqual({ revision: 2, revoked_at: expect.any(Number) });
});

describe.each([
  { revision: 'legacy', client: () => legacy },
  { revision: 'modern', client: () => modern },
])('connected $revision client', ({ client }) => {
  it('fails tools/call with HTTP 401', async () => {
    const error = await rejectionOf(
      client().callTool({
        name: 'files__list_directory',
        arguments: { path: environment.filesDir },
      }),
    );

    expect(error).toBeInstanceOf(SdkHttpError);
    expect(error.code).toBe(SdkErrorCode.ClientHttpNotImplemented);
    expect(error.message).toBe(`Error POSTing to endpoint: ${INVALID_TOKEN_BODY}`);
    expect(error.data).toEqual({
      status: 401,
      statusText: 'Unauthorized',
      text: INVALID_TOKEN_BODY,
    });
  });

  it('fails tools/list with HTTP 401', async () => {
    const error = await rejectionOf(client().listTools());

    expect(error).toBeInstanceOf(SdkHttpError);
    expect((error as unknown as SdkHttpError).status).toBe(401);
    expect(error.message).toBe(`Error POSTing to endpoint: ${INVALID_TOKEN_BODY}`);
  });
});

describe('after the disable', () => {
  it('rejects a new token request', async () => {
    const error = await rejectionOf(
      tokenFor(environment, { channel: 'C02ENG', invoker: 'U01ALICE' }),
    );

    expect(error).toBeInstanceOf(TokenRequestError);
    expect(error.status).toBe(400);
    expect(error.body).toEqual({
      error: 'invalid_grant',
      error_description: 'no identity token: agent_disabled',
    });
  });

  it('records no tool call', async () => {
    const events = await auditEventsAfter(environment, afterDisable);

    expect(events.map((event) => event.type)).not.toContain('tool.call');
    expect(events.map((event) => event.type)).not.toContain('decision');
  });
});
