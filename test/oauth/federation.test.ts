/**
 * Federation: identity tokens from trusted external issuers exchanged for Deputy access
 * tokens. One issuer publishes its keys on a loopback JWKS server, another is configured with
 * inline keys and its own claim names. Every rejected token gets its exact error, and a key URL
 * named by the token itself is never fetched.
 */
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Policy } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';
import {
  acmeWithAgents,
  auditEventsAfter,
  callApi,
  GITHUB_MCP,
  lastAuditSeq,
  type LoopbackServer,
  readAcme,
  type OAuthHarness,
  registerClient,
  requestExchange,
  type Runtime,
  startLoopbackServer,
  startOAuthHarness,
  TOKEN_TYPE_ACCESS,
  validated,
  verifyIssued,
  waitPastSecond,
} from './harness.js';

const IDP = 'https://idp.runtime.example';
const CI = 'https://ci.runtime.example';
const CI_AUDIENCE = 'https://deputy.acme.example/federation';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

let harness: OAuthHarness;
let jwksServer: LoopbackServer;
let canary: LoopbackServer;
let idpKey: KeyPair;
let idp384Key: KeyPair;
let ciKey: KeyPair;

/** A runtime that sends no client authentication at all: the federated token is its proof. */
const anonymous: Runtime = {
  client: { client_id: 'unused' },
  auth: () => {},
  method: 'client_secret_post',
  secret: null,
  key: null,
};

async function publicJwk(pair: KeyPair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
}

/** Returns the acme policy trusting the loopback issuer (keys by URL) and the CI issuer (inline). */
function federatedPolicy(jwksUri: string, ciJwk: JWK): Policy {
  const policy = acmeWithAgents();
  policy.federation = [
    {
      id: 'runtime-idp',
      issuer: IDP,
      jwks_uri: jwksUri,
      algorithms: ['ES256'],
      claims: { agent: 'agent', channel: 'channel', invoker: 'invoker', thread: 'thread' },
      agents: ['helper'],
    },
    {
      id: 'ci',
      issuer: CI,
      jwks: { keys: [ciJwk as Record<string, unknown>] },
      audience: CI_AUDIENCE,
      algorithms: ['ES256'],
      claims: { agent: 'svc', channel: 'room', invoker: 'user', thread: 'job' },
    },
  ];
  return validated(policy);
}

beforeAll(async () => {
  idpKey = await generateKeyPair('ES256');
  idp384Key = await generateKeyPair('ES384');
  ciKey = await generateKeyPair('ES256');
  jwksServer = await startLoopbackServer({
    keys: [await publicJwk(idpKey, 'idp-1', 'ES256'), await publicJwk(idp384Key, 'idp-2', 'ES384')],
  });
  canary = await startLoopbackServer(null);

  const ciJwk = await publicJwk(ciKey, 'ci-1', 'ES256');
  harness = await startOAuthHarness({
    policies: [federatedPolicy(`${jwksServer.url}/jwks`, ciJwk)],
  });
});

afterAll(async () => {
  await harness.close();
  await jwksServer.close();
  await canary.close();
});

interface ExternalToken {
  claims?: JWTPayload;
  header?: Record<string, unknown>;
  key?: KeyPair['privateKey'];
}

/** Signs a token of the loopback issuer for helper in C02ENG, with `claims` overriding. */
async function idpToken(options: ExternalToken = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: IDP,
    aud: harness.issuer,
    sub: 'session-7',
    iat: now,
    exp: now + 300,
    agent: 'helper',
    channel: 'C02ENG',
    invoker: 'U01ALICE',
    ...options.claims,
  };
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', kid: 'idp-1', ...options.header } as { alg: string })
    .sign(options.key ?? idpKey.privateKey);
}

describe('federated exchange', () => {
  it('exchanges a token from a jwks_uri issuer', async () => {
    const external = await idpToken({ claims: { thread: 'T42' } });
    const reply = await requestExchange(harness, anonymous, external, { resource: GITHUB_MCP });

    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      access_token: expect.any(String),
      issued_token_type: TOKEN_TYPE_ACCESS,
      token_type: 'Bearer',
      expires_in: expect.any(Number),
      scope: 'repo.read repo.write issue.read issue.write',
    });
    const { payload } = await verifyIssued(harness, reply.body.access_token as string, {
      typ: 'at+jwt',
      audience: GITHUB_MCP,
    });
    expect(payload).toEqual({
      iss: harness.issuer,
      aud: GITHUB_MCP,
      sub: 'agent:helper',
      client_id: 'federation:runtime-idp',
      scope: 'repo.read repo.write issue.read issue.write',
      act: { sub: 'agent:helper' },
      workspace: 'acme',
      agent: 'helper',
      channel: 'C02ENG',
      invoker: 'U01ALICE',
      thread: 'T42',
      jti: expect.any(String),
      iat: expect.any(Number),
      exp: expect.any(Number),
    });
    const externalExp = JSON.parse(Buffer.from(external.split('.')[1]!, 'base64url').toString())
      .exp as number;
    expect(payload.exp).toBeLessThanOrEqual(externalExp);
    expect(jwksServer.requests()).toBeGreaterThanOrEqual(1);
  });

  it('maps a private channel identity', async () => {
    const external = await idpToken({ claims: { channel: 'C04LEGAL', invoker: 'U03CAROL' } });
    const reply = await requestExchange(harness, anonymous, external, { resource: GITHUB_MCP });

    expect(reply.status).toBe(200);
    const { payload } = await verifyIssued(harness, reply.body.access_token as string, {
      typ: 'at+jwt',
      audience: GITHUB_MCP,
    });
    expect(payload.sub).toBe('agent:helper/channel:C04LEGAL');
    expect(payload.scope).toBe('repo.read issue.read');
    expect(payload.client_id).toBe('federation:runtime-idp');
  });

  it('reads inline keys and mapped claims', async () => {
    const now = Math.floor(Date.now() / 1000);
    const external = await new SignJWT({
      iss: CI,
      aud: CI_AUDIENCE,
      sub: 'pipeline-1',
      iat: now,
      exp: now + 120,
      svc: 'helper',
      room: 'C02ENG',
      user: 'U02BOB',
      job: 'build-9',
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'ci-1' })
      .sign(ciKey.privateKey);
    const reply = await requestExchange(harness, anonymous, external, {
      resource: GITHUB_MCP,
      scope: 'repo.read',
    });

    expect(reply.status).toBe(200);
    const { payload } = await verifyIssued(harness, reply.body.access_token as string, {
      typ: 'at+jwt',
      audience: GITHUB_MCP,
    });
    expect(payload.sub).toBe('agent:helper');
    expect(payload.client_id).toBe('federation:ci');
    expect(payload.channel).toBe('C02ENG');
    expect(payload.invoker).toBe('U02BOB');
    expect(payload.thread).toBe('build-9');
    expect(payload.scope).toBe('repo.read');
    expect(payload.exp).toBeLessThanOrEqual(now + 120);
  });

  it('uses the authenticated client id', async () => {
    const runtime = await registerClient(harness, 'helper', 'client_secret_basic');
    const reply = await requestExchange(harness, runtime, await idpToken(), {
      resource: GITHUB_MCP,
    });

    expect(reply.status).toBe(200);
    const { payload } = await verifyIssued(harness, reply.body.access_token as string, {
      typ: 'at+jwt',
      audience: GITHUB_MCP,
    });
    expect(payload.client_id).toBe(runtime.client.client_id);
    expect(payload).not.toHaveProperty('subject_jti');
  });

  it('rejects a client of another agent', async () => {
    const scribe = await registerClient(harness, 'scribe', 'client_secret_basic');
    const reply = await requestExchange(harness, scribe, await idpToken(), {
      resource: GITHUB_MCP,
    });

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_grant',
      error_description: 'subject_token names another agent',
    });
  });

  it('records the exchange', async () => {
    const after = await lastAuditSeq(harness.deputy);
    const reply = await requestExchange(harness, anonymous, await idpToken(), {
      resource: GITHUB_MCP,
      scope: 'issue.read',
    });
    const events = await auditEventsAfter(harness.deputy, after);

    expect(events.map((event) => event.type)).toEqual(['token.exchange']);
    expect(events[0]).toMatchObject({
      workspace: 'acme',
      actor: { type: 'agent', id: 'helper' },
      identity: 'agent:helper',
      invoker: 'U01ALICE',
      scope: 'channel:C02ENG',
      resource: GITHUB_MCP,
      decision: 'allow',
      reason: 'granted',
      detail: {
        client_id: 'federation:runtime-idp',
        token_type: 'access',
        jti: JSON.parse(
          Buffer.from((reply.body.access_token as string).split('.')[1]!, 'base64url').toString(),
        ).jti,
        scope: 'issue.read',
        expires_in: reply.body.expires_in,
      },
    });
  });
});

describe('federated rejections', () => {
  const rejected = (description: string) => ({
    error: 'invalid_grant',
    error_description: description,
  });
  const now = () => Math.floor(Date.now() / 1000);

  const cases: [string, () => Promise<string>, string][] = [
    [
      'a wrong issuer',
      () => idpToken({ claims: { iss: 'https://evil.runtime.example' } }),
      'subject_token issuer is not trusted',
    ],
    [
      'a wrong audience',
      () => idpToken({ claims: { aud: 'https://other-deputy.example' } }),
      'subject_token rejected: ERR_TOKEN_AUDIENCE',
    ],
    [
      'a jku header',
      () => idpToken({ header: { jku: `${canary.url}/jwks` } }),
      'subject_token rejected: ERR_TOKEN_HEADER',
    ],
    [
      'an x5u header',
      () => idpToken({ header: { x5u: `${canary.url}/cert.pem` } }),
      'subject_token rejected: ERR_TOKEN_HEADER',
    ],
    [
      'an agent not listed',
      () => idpToken({ claims: { agent: 'scribe' } }),
      'issuer runtime-idp may not speak for agent scribe',
    ],
    [
      'an alg not listed',
      async () =>
        await new SignJWT({
          iss: IDP,
          aud: harness.issuer,
          sub: 'session-7',
          iat: now(),
          exp: now() + 300,
          agent: 'helper',
          channel: 'C02ENG',
        })
          .setProtectedHeader({ alg: 'ES384', kid: 'idp-2' })
          .sign(idp384Key.privateKey),
      'subject_token rejected: ERR_TOKEN_ALG',
    ],
    [
      'an expired token',
      () => idpToken({ claims: { iat: now() - 400, exp: now() - 100 } }),
      'subject_token rejected: ERR_TOKEN_EXPIRED',
    ],
    [
      'a lifetime over an hour',
      () => idpToken({ claims: { exp: now() + 3601 } }),
      'subject_token rejected: ERR_TOKEN_CLAIMS',
    ],
    [
      'a shared channel',
      () => idpToken({ claims: { channel: 'C06PARTNER' } }),
      'the identity may not act: channel_excluded',
    ],
    [
      'an invoker not permitted',
      () => idpToken({ claims: { invoker: 'U03CAROL' } }),
      'the identity may not act: invoker_not_permitted',
    ],
    [
      'a missing agent claim',
      () => idpToken({ claims: { agent: undefined } }),
      'subject_token has no agent claim',
    ],
    [
      'a signature by another key',
      async () => idpToken({ key: (await generateKeyPair('ES256')).privateKey }),
      'subject_token rejected: ERR_TOKEN_SIGNATURE',
    ],
    [
      'an unknown kid',
      () => idpToken({ header: { kid: 'idp-9' } }),
      'subject_token rejected: ERR_TOKEN_KID',
    ],
  ];

  it.each(cases)('rejects %s', async (_name, makeToken, description) => {
    const reply = await requestExchange(harness, anonymous, await makeToken(), {
      resource: GITHUB_MCP,
    });

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual(rejected(description));
  });

  // Known bug: the identity grant accepts a thread of 1 to 200 printable ASCII characters,
  // but a federated token's thread claim is copied into the access token unchecked.
  it('rejects a thread the identity grant would reject', async () => {
    const thread = `line one\nline two ${'x'.repeat(300)}`;
    const reply = await requestExchange(
      harness,
      anonymous,
      await idpToken({ claims: { thread } }),
      {
        resource: GITHUB_MCP,
      },
    );

    expect(reply.status).toBe(400);
  });

  it('never fetches a key URL from a token', () => {
    expect(canary.requests()).toBe(0);
  });

  it('rejects a disabled agent', async () => {
    const external = await new SignJWT({
      iss: CI,
      aud: CI_AUDIENCE,
      sub: 'pipeline-2',
      iat: now(),
      exp: now() + 120,
      svc: 'archivist',
      room: 'C02ENG',
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'ci-1' })
      .sign(ciKey.privateKey);
    const reply = await requestExchange(harness, anonymous, external, { resource: GITHUB_MCP });

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual(rejected('the identity may not act: agent_disabled'));
  });
});

describe('federation and the kill switch', () => {
  it('keeps earlier tokens revoked after enable', async () => {
    const before = await idpToken();
    const agentPath = '/admin/v1/workspaces/acme/agents/helper';
    const disabled = await callApi(harness, 'POST', `${agentPath}/disable`, harness.keys.admin, {});
    expect(disabled.status).toBe(200);

    const whileDisabled = await requestExchange(harness, anonymous, before, {
      resource: GITHUB_MCP,
    });
    expect(whileDisabled.body).toEqual({
      error: 'invalid_grant',
      error_description: 'the identity may not act: agent_disabled',
    });

    const enabled = await callApi(harness, 'POST', `${agentPath}/enable`, harness.keys.admin, {});
    expect(enabled.status).toBe(200);
    const afterEnable = await requestExchange(harness, anonymous, before, {
      resource: GITHUB_MCP,
    });
    expect(afterEnable.status).toBe(400);
    expect(afterEnable.body).toEqual({
      error: 'invalid_grant',
      error_description: 'subject_token is revoked',
    });

    await waitPastSecond(disabled.body.revoked_at as number);
    const fresh = await requestExchange(harness, anonymous, await idpToken(), {
      resource: GITHUB_MCP,
    });
    expect(fresh.status).toBe(200);
  });
});

describe('federation policy', () => {
  // Known bug: `algorithms` is not checked when the policy loads. HS256 or none is accepted,
  // and every token of that issuer is then rejected with "subject_token rejected: invalid".
  it('rejects symmetric algorithms at load', () => {
    const policy = readAcme();
    policy.federation = [
      {
        id: 'shared-secret-idp',
        issuer: 'https://hs.runtime.example',
        jwks_uri: 'https://hs.runtime.example/jwks',
        algorithms: ['HS256', 'none'],
        claims: { agent: 'agent', channel: 'channel', invoker: 'invoker', thread: 'thread' },
      },
    ];

    expect(parsePolicy(policy).ok).toBe(false);
  });
});
