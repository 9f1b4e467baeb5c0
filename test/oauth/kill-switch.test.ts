/**
 * The kill switch seen from a runtime and a resource server. Disabling an agent or one of its
 * identities through the admin API makes issued tokens inactive at once and stops issuance and
 * decisions. Each disable is audited, and tokens issued before it stay inactive after enable.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  accessToken,
  auditEventsAfter,
  callApi,
  claimsOf,
  GITHUB_MCP,
  identityToken,
  introspect,
  lastAuditSeq,
  type OAuthHarness,
  registerClient,
  requestExchange,
  requestIdentityToken,
  type Runtime,
  startOAuthHarness,
  startPeer,
  waitPastSecond,
} from './harness.js';

const AGENT_PATH = '/admin/v1/workspaces/acme/agents/helper';
const INACTIVE = { active: false };

/** Chain fields that every stored audit event has and no test predicts. */
const CHAIN_FIELDS = {
  seq: expect.any(Number),
  time: expect.any(String),
  prev: expect.stringMatching(/^[0-9a-f]{64}$/),
  hash: expect.stringMatching(/^[0-9a-f]{64}$/),
};

let harness: OAuthHarness;
let runtime: Runtime;

beforeEach(async () => {
  harness = await startOAuthHarness();
  runtime = await registerClient(harness, 'helper', 'client_secret_basic');
});

afterEach(async () => {
  await harness.close();
});

function disable(body: Record<string, string> = {}) {
  return callApi(harness, 'POST', `${AGENT_PATH}/disable`, harness.keys.admin, body);
}

function enable(body: Record<string, string> = {}) {
  return callApi(harness, 'POST', `${AGENT_PATH}/enable`, harness.keys.admin, body);
}

/** Issues an identity token for helper in `channel` and an access token exchanged from it. */
async function tokensIn(channel: string, invoker: string) {
  const identity = await identityToken(harness, runtime, { channel, invoker });
  const access = await accessToken(harness, runtime, identity, {
    resource: GITHUB_MCP,
    scope: 'repo.read',
  });
  return { identity, access };
}

/** Asks the AuthZEN endpoint whether helper may read the handbook in `channel`. */
async function evaluate(channel: string, invoker: string) {
  return await callApi(harness, 'POST', '/access/v1/evaluation', harness.keys.pep, {
    subject: { type: 'agent', id: 'helper', properties: { channel } },
    action: { name: 'repo.read' },
    resource: { type: 'repo', id: 'acme/handbook' },
    context: { invoker },
  });
}

describe('agent disable', () => {
  it('makes issued tokens inactive at once', async () => {
    const { identity, access } = await tokensIn('C02ENG', 'U01ALICE');
    const identityClaims = claimsOf(identity);
    const accessClaims = claimsOf(access);
    const common = {
      active: true,
      client_id: runtime.client.client_id,
      sub: 'agent:helper',
      iss: harness.issuer,
      workspace: 'acme',
      agent: 'helper',
      channel: 'C02ENG',
      invoker: 'U01ALICE',
    };

    expect((await introspect(harness, runtime, identity)).body).toEqual({
      ...common,
      token_type: 'identity',
      aud: harness.issuer,
      exp: identityClaims.exp,
      iat: identityClaims.iat,
      jti: identityClaims.jti,
    });
    expect((await introspect(harness, runtime, access)).body).toEqual({
      ...common,
      token_type: 'Bearer',
      scope: 'repo.read',
      aud: GITHUB_MCP,
      exp: accessClaims.exp,
      iat: accessClaims.iat,
      jti: accessClaims.jti,
      act: { sub: 'agent:helper' },
    });

    const started = performance.now();
    const disabled = await disable();
    const returned = performance.now();
    let inactiveAt: number | null = null;
    while (inactiveAt === null && performance.now() - returned < 2000) {
      const reply = await introspect(harness, runtime, access);
      if (reply.body.active === false) inactiveAt = performance.now();
    }

    expect(disabled.status).toBe(200);
    expect(disabled.body).toEqual({ revision: 2, revoked_at: expect.any(Number) });
    expect(inactiveAt).not.toBeNull();
    const afterReturn = (inactiveAt as number) - returned;
    const afterStart = (inactiveAt as number) - started;
    console.log(
      `kill switch latency: ${afterReturn.toFixed(1)} ms from the disable response to the ` +
        `first inactive introspection, ${afterStart.toFixed(1)} ms from the disable request`,
    );
    expect(afterReturn).toBeLessThan(1000);
    expect(afterStart).toBeLessThan(1000);
    expect((await introspect(harness, runtime, access)).body).toEqual(INACTIVE);
    expect((await introspect(harness, runtime, identity)).body).toEqual(INACTIVE);
  });

  it('stops exchange, issuance and decisions', async () => {
    const identity = await identityToken(harness, runtime, { channel: 'C02ENG' });
    const after = await lastAuditSeq(harness.deputy);
    const disabled = await disable();
    expect(disabled.status).toBe(200);

    const exchange = await requestExchange(harness, runtime, identity, { resource: GITHUB_MCP });
    expect(exchange.status).toBe(400);
    expect(exchange.body).toEqual({
      error: 'invalid_grant',
      error_description: 'subject_token is revoked',
    });

    const issued = await requestIdentityToken(harness, runtime, { channel: 'C02ENG' });
    expect(issued.status).toBe(400);
    expect(issued.body).toEqual({
      error: 'invalid_grant',
      error_description: 'no identity token: agent_disabled',
    });

    const decision = await evaluate('C02ENG', 'U01ALICE');
    expect(decision.status).toBe(200);
    expect(decision.body.decision).toBe(false);
    expect((decision.body.context as Record<string, unknown>).reason).toBe('agent_disabled');

    const events = await auditEventsAfter(harness.deputy, after);
    const disableEvents = events.filter((event) => event.type === 'agent.disable');
    expect(disableEvents).toEqual([
      {
        ...CHAIN_FIELDS,
        type: 'agent.disable',
        workspace: 'acme',
        actor: { type: 'api_key', id: harness.keyIds.admin },
        identity: 'agent:helper',
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
        request_id: expect.any(String),
        detail: { agent: 'helper', revoked_at: disabled.body.revoked_at },
      },
    ]);
    const change = events.find((event) => event.type === 'admin.change');
    expect(change?.actor).toEqual({ type: 'api_key', id: harness.keyIds.admin });
    expect(change?.revision).toBe(2);
    expect(change?.detail).toEqual({ summary: 'disable agent helper', previous_revision: 1 });
  });

  it('keeps old tokens inactive after enable', async () => {
    const { identity, access } = await tokensIn('C02ENG', 'U01ALICE');
    const disabled = await disable();
    const after = await lastAuditSeq(harness.deputy);
    const enabled = await enable();

    expect(enabled.status).toBe(200);
    expect(enabled.body).toEqual({ revision: 3 });
    expect((await introspect(harness, runtime, identity)).body).toEqual(INACTIVE);
    expect((await introspect(harness, runtime, access)).body).toEqual(INACTIVE);
    const enableEvents = (await auditEventsAfter(harness.deputy, after)).filter(
      (event) => event.type === 'agent.enable',
    );
    expect(enableEvents).toHaveLength(1);
    expect(enableEvents[0]).toMatchObject({
      workspace: 'acme',
      actor: { type: 'api_key', id: harness.keyIds.admin },
      identity: 'agent:helper',
      detail: { agent: 'helper' },
    });

    // Revocation covers every token issued at or before the whole second of the disable.
    await waitPastSecond(disabled.body.revoked_at as number);
    const fresh = await tokensIn('C02ENG', 'U01ALICE');
    expect((await introspect(harness, runtime, fresh.identity)).body.active).toBe(true);
    expect((await introspect(harness, runtime, fresh.access)).body.active).toBe(true);
    expect((await introspect(harness, runtime, identity)).body).toEqual(INACTIVE);
  });
});

describe('another Deputy process', () => {
  it('sees the disable at its next reload', async () => {
    const peer = await startPeer(harness, 1000);
    try {
      const { access } = await tokensIn('C02ENG', 'U01ALICE');
      const introspectAtPeer = async () => {
        const response = await fetch(`${peer.url}/oauth/introspect`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${harness.keys.pep}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({ token: access }),
        });
        return (await response.json()) as Record<string, unknown>;
      };
      // The peer learns of the signing key, created with the first token, at its next reload.
      const known = performance.now();
      while ((await introspectAtPeer()).active !== true && performance.now() - known < 3000) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect((await introspectAtPeer()).active).toBe(true);

      const disabled = await disable();
      const returned = performance.now();
      let inactiveAt: number | null = null;
      while (inactiveAt === null && performance.now() - returned < 3000) {
        if ((await introspectAtPeer()).active === false) inactiveAt = performance.now();
        else await new Promise((resolve) => setTimeout(resolve, 10));
      }

      expect(disabled.status).toBe(200);
      expect(inactiveAt).not.toBeNull();
      const latency = (inactiveAt as number) - returned;
      console.log(
        `kill switch latency at a peer process (reload every 1000 ms): ${latency.toFixed(1)} ms ` +
          'from the disable response to the first inactive introspection',
      );
      // The peer reloads revocations every 1000 ms, and the margin covers the reload itself.
      expect(latency).toBeLessThan(1500);
      expect(await introspectAtPeer()).toEqual(INACTIVE);
    } finally {
      await peer.close();
    }
  });
});

describe('identity disable', () => {
  it('spares the agent in other scopes', async () => {
    const legal = await tokensIn('C04LEGAL', 'U03CAROL');
    const engineering = await tokensIn('C02ENG', 'U01ALICE');

    const disabled = await disable({ identity: 'agent:helper/channel:C04LEGAL' });
    expect(disabled.status).toBe(200);

    expect((await introspect(harness, runtime, legal.identity)).body).toEqual(INACTIVE);
    expect((await introspect(harness, runtime, legal.access)).body).toEqual(INACTIVE);
    expect((await introspect(harness, runtime, engineering.identity)).body.active).toBe(true);
    expect((await introspect(harness, runtime, engineering.access)).body.active).toBe(true);

    const legalIssue = await requestIdentityToken(harness, runtime, {
      channel: 'C04LEGAL',
      invoker: 'U03CAROL',
    });
    expect(legalIssue.status).toBe(400);
    expect(legalIssue.body).toEqual({
      error: 'invalid_grant',
      error_description: 'no identity token: identity_disabled',
    });
    const legalExchange = await requestExchange(harness, runtime, legal.identity, {
      resource: GITHUB_MCP,
    });
    expect(legalExchange.body).toEqual({
      error: 'invalid_grant',
      error_description: 'subject_token is revoked',
    });

    const fresh = await tokensIn('C02ENG', 'U01ALICE');
    expect((await introspect(harness, runtime, fresh.access)).body.active).toBe(true);
    expect(
      ((await evaluate('C04LEGAL', 'U03CAROL')).body.context as { reason: string }).reason,
    ).toBe('identity_disabled');
    expect(((await evaluate('C02ENG', 'U01ALICE')).body.context as { reason: string }).reason).toBe(
      'granted',
    );
  });

  it('revokes a DM identity', async () => {
    const dm = await identityToken(harness, runtime, {
      channel: 'dm:U01ALICE',
      invoker: 'U01ALICE',
    });

    const disabled = await disable({ identity: 'member:U01ALICE' });
    expect(disabled.status).toBe(200);

    expect((await introspect(harness, runtime, dm)).body).toEqual(INACTIVE);
    const issued = await requestIdentityToken(harness, runtime, {
      channel: 'dm:U01ALICE',
      invoker: 'U01ALICE',
    });
    expect(issued.body).toEqual({
      error: 'invalid_grant',
      error_description: 'no identity token: identity_disabled',
    });
  });

  // Known bug: the workspace identity `agent:helper` and the whole agent share one revocation
  // principal, so disabling only that identity also revokes helper's private-channel tokens,
  // although the policy still lets helper act, and get new tokens, in that channel.
  it('agent:helper spares private channel tokens', async () => {
    const legal = await tokensIn('C04LEGAL', 'U03CAROL');

    const disabled = await disable({ identity: 'agent:helper' });
    expect(disabled.status).toBe(200);

    const fresh = await requestIdentityToken(harness, runtime, {
      channel: 'C04LEGAL',
      invoker: 'U03CAROL',
    });
    expect(fresh.status).toBe(200);
    expect((await introspect(harness, runtime, legal.identity)).body.active).toBe(true);
  });

  // Revocations are keyed by identity, so disabling helper's DM identity also revokes other
  // agents' tokens in that DM, while the policy lets them get new ones at once (docs/tokens.md).
  it('DM identity revokes other agents too', async () => {
    const scribe = await registerClient(harness, 'scribe', 'client_secret_basic');
    const scribeDm = await identityToken(harness, scribe, {
      channel: 'dm:U01ALICE',
      invoker: 'U01ALICE',
    });

    const disabled = await disable({ identity: 'member:U01ALICE' });
    expect(disabled.status).toBe(200);

    const fresh = await requestIdentityToken(harness, scribe, {
      channel: 'dm:U01ALICE',
      invoker: 'U01ALICE',
    });
    expect(fresh.status).toBe(200);
    expect((await introspect(harness, scribe, scribeDm)).body).toEqual(INACTIVE);
  });
});

describe('rejected disable', () => {
  // Known bug: the revocation runs before the policy change is validated, so a request that
  // names another agent's identity gets a 400 response but has already revoked that agent's
  // tokens and recorded an agent.disable event.
  it('revokes nothing for a foreign identity', async () => {
    const scribe = await registerClient(harness, 'scribe', 'client_secret_basic');
    const scribeToken = await identityToken(harness, scribe, { channel: 'C02ENG' });
    const after = await lastAuditSeq(harness.deputy);

    const rejected = await disable({ identity: 'agent:scribe' });
    expect(rejected.status).toBe(400);

    expect((await introspect(harness, scribe, scribeToken)).body.active).toBe(true);
    const events = await auditEventsAfter(harness.deputy, after);
    expect(events.map((event) => event.type)).not.toContain('agent.disable');
  });

  it('rejects a foreign identity', async () => {
    const rejected = await disable({ identity: 'agent:scribe' });

    expect(rejected.status).toBe(400);
    expect(rejected.body).toEqual({
      error: 'invalid_request',
      error_description: '"agent:scribe" is not an identity of agent helper',
    });
    expect((await requestIdentityToken(harness, runtime, { channel: 'C02ENG' })).status).toBe(200);
  });
});
