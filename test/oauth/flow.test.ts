/**
 * Deputy's OAuth 2.0 authorization server driven end to end by oauth4webapi over loopback
 * HTTP: discovery, the JWK set, identity tokens with each client authentication method, token
 * exchange, introspection and revocation, and the exact errors of each rejected request.
 */
import { calculateJwkThumbprint, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  callApi,
  GITHUB_MCP,
  identityToken,
  INSECURE,
  introspect,
  type OAuthHarness,
  readReply,
  registerClient,
  requestExchange,
  requestIdentityToken,
  revoke,
  type Runtime,
  startOAuthHarness,
  TOKEN_EXCHANGE,
  TOKEN_TYPE_ACCESS,
  verifyIssued,
} from './harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let harness: OAuthHarness;
/** A `client_secret_basic` client of the helper agent, for the error cases. */
let basic: Runtime;
/** A `private_key_jwt` client of the helper agent, for the assertion cases. */
let keyed: Runtime;

beforeAll(async () => {
  harness = await startOAuthHarness();
  basic = await registerClient(harness, 'helper', 'client_secret_basic');
  keyed = await registerClient(harness, 'helper', 'private_key_jwt');
});

afterAll(async () => {
  await harness.close();
});

/** Returns the `kid` of Deputy's current signing key, read from the published JWK set. */
async function currentKid(): Promise<string> {
  const response = await fetch(`${harness.issuer}/oauth/jwks`);
  const jwks = (await response.json()) as { keys: JWK[] };
  return jwks.keys[0]!.kid as string;
}

describe('discovery', () => {
  it('publishes authorization server metadata', async () => {
    const issuer = harness.issuer;
    const response = await fetch(`${issuer}/.well-known/oauth-authorization-server`);

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      issuer,
      token_endpoint: `${issuer}/oauth/token`,
      jwks_uri: `${issuer}/oauth/jwks`,
      introspection_endpoint: `${issuer}/oauth/introspect`,
      revocation_endpoint: `${issuer}/oauth/revoke`,
      grant_types_supported: ['client_credentials', TOKEN_EXCHANGE],
      token_endpoint_auth_methods_supported: [
        'private_key_jwt',
        'client_secret_basic',
        'client_secret_post',
      ],
      token_endpoint_auth_signing_alg_values_supported: [
        'ES256',
        'ES384',
        'RS256',
        'PS256',
        'EdDSA',
      ],
      introspection_endpoint_auth_methods_supported: [
        'private_key_jwt',
        'client_secret_basic',
        'client_secret_post',
        'bearer',
      ],
      revocation_endpoint_auth_methods_supported: [
        'private_key_jwt',
        'client_secret_basic',
        'client_secret_post',
        'bearer',
      ],
      response_types_supported: [],
      id_token_signing_alg_values_supported: ['ES256'],
    });
  });

  it('matches what oauth4webapi discovered', () => {
    expect(harness.as.issuer).toBe(harness.issuer);
    expect(harness.as.token_endpoint).toBe(`${harness.issuer}/oauth/token`);
    expect(harness.as.introspection_endpoint).toBe(`${harness.issuer}/oauth/introspect`);
    expect(harness.as.revocation_endpoint).toBe(`${harness.issuer}/oauth/revoke`);
  });

  // Known bug: the signing key is created on first use, so until a token is signed the JWK
  // set is empty, and a resource server that fetches it at start-up caches no key.
  it('serves a key before the first token', async () => {
    const response = await fetch(`${harness.issuer}/oauth/jwks`);
    const jwks = (await response.json()) as { keys: JWK[] };

    expect(response.status).toBe(200);
    expect(jwks.keys).toHaveLength(1);
  });

  it('serves one public ES256 key', async () => {
    await identityToken(harness, basic, {});
    const response = await fetch(`${harness.issuer}/oauth/jwks`);
    const jwks = (await response.json()) as { keys: JWK[] };

    expect(response.status).toBe(200);
    expect(jwks.keys).toHaveLength(1);
    const key = jwks.keys[0]!;
    expect(key).toEqual({
      kty: 'EC',
      crv: 'P-256',
      x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      y: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      kid: await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: key.x, y: key.y }),
      alg: 'ES256',
      use: 'sig',
    });
  });
});

describe.each(['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const)(
  'runtime with %s',
  (method) => {
    let runtime: Runtime;

    beforeAll(async () => {
      runtime = await registerClient(harness, 'helper', method);
    });

    it('gets an identity token for a channel', async () => {
      const reply = await requestIdentityToken(harness, runtime, {
        channel: 'C02ENG',
        invoker: 'U01ALICE',
        thread: 'T0001.42',
      });

      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({
        access_token: expect.any(String),
        token_type: 'Bearer',
        expires_in: 600,
      });
      const token = reply.body.access_token as string;
      const { payload, header } = await verifyIssued(harness, token, {
        typ: 'deputy-id+jwt',
        audience: harness.issuer,
      });
      expect(header).toEqual({ alg: 'ES256', kid: await currentKid(), typ: 'deputy-id+jwt' });
      expect(payload).toEqual({
        iss: harness.issuer,
        aud: harness.issuer,
        sub: 'agent:helper',
        client_id: runtime.client.client_id,
        workspace: 'acme',
        agent: 'helper',
        channel: 'C02ENG',
        invoker: 'U01ALICE',
        thread: 'T0001.42',
        jti: expect.stringMatching(UUID),
        iat: expect.any(Number),
        exp: expect.any(Number),
      });
      expect(payload.exp! - payload.iat!).toBe(600);
      expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
    });

    it('exchanges it for an access token', async () => {
      const subject = await identityToken(harness, runtime, {
        channel: 'C02ENG',
        invoker: 'U01ALICE',
        thread: 'T0001.42',
      });
      const subjectClaims = (
        await verifyIssued(harness, subject, { typ: 'deputy-id+jwt', audience: harness.issuer })
      ).payload;

      const reply = await requestExchange(harness, runtime, subject, {
        resource: GITHUB_MCP,
        scope: 'repo.read repo.write',
      });

      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({
        access_token: expect.any(String),
        issued_token_type: TOKEN_TYPE_ACCESS,
        token_type: 'Bearer',
        expires_in: 300,
        scope: 'repo.read repo.write',
      });
      const { payload, header } = await verifyIssued(harness, reply.body.access_token as string, {
        typ: 'at+jwt',
        audience: GITHUB_MCP,
      });
      expect(header).toEqual({ alg: 'ES256', kid: await currentKid(), typ: 'at+jwt' });
      expect(payload).toEqual({
        iss: harness.issuer,
        aud: GITHUB_MCP,
        sub: 'agent:helper',
        client_id: runtime.client.client_id,
        scope: 'repo.read repo.write',
        act: { sub: 'agent:helper' },
        workspace: 'acme',
        agent: 'helper',
        channel: 'C02ENG',
        invoker: 'U01ALICE',
        thread: 'T0001.42',
        subject_jti: subjectClaims.jti,
        jti: expect.stringMatching(UUID),
        iat: expect.any(Number),
        exp: expect.any(Number),
      });
      expect(payload.jti).not.toBe(subjectClaims.jti);
      expect(payload.exp).toBeLessThanOrEqual(subjectClaims.exp!);
      expect(payload.exp! - payload.iat!).toBe(300);
    });

    it('introspects and revokes its tokens', async () => {
      const subject = await identityToken(harness, runtime, { channel: 'C02ENG' });
      const access = (await requestExchange(harness, runtime, subject, { resource: GITHUB_MCP }))
        .body.access_token as string;

      const response = await oauth.introspectionRequest(
        harness.as,
        runtime.client,
        runtime.auth,
        access,
        INSECURE,
      );
      const active = await oauth.processIntrospectionResponse(harness.as, runtime.client, response);
      expect(active.active).toBe(true);
      expect(active.scope).toBe('repo.read issue.read issue.write');
      expect(active.token_type).toBe('Bearer');

      const revoked = await oauth.revocationRequest(
        harness.as,
        runtime.client,
        runtime.auth,
        access,
        INSECURE,
      );
      await oauth.processRevocationResponse(revoked);
      expect((await introspect(harness, runtime, access)).body).toEqual({ active: false });
      expect((await introspect(harness, runtime, subject)).body.active).toBe(true);
    });
  },
);

describe('identity token subjects', () => {
  it('names a private channel identity', async () => {
    const token = await identityToken(harness, basic, { channel: 'C04LEGAL', invoker: 'U03CAROL' });
    const { payload } = await verifyIssued(harness, token, {
      typ: 'deputy-id+jwt',
      audience: harness.issuer,
    });

    expect(payload.sub).toBe('agent:helper/channel:C04LEGAL');
    expect(payload.channel).toBe('C04LEGAL');
    expect(payload.invoker).toBe('U03CAROL');
  });

  it('names the member in their DM', async () => {
    const token = await identityToken(harness, basic, {
      channel: 'dm:U01ALICE',
      invoker: 'U01ALICE',
    });
    const { payload } = await verifyIssued(harness, token, {
      typ: 'deputy-id+jwt',
      audience: harness.issuer,
    });

    expect(payload.sub).toBe('member:U01ALICE');
    expect(payload.channel).toBe('dm:U01ALICE');
    expect(payload.invoker).toBe('U01ALICE');
  });

  it('names the agent for the workspace', async () => {
    const token = await identityToken(harness, basic, {});
    const { payload } = await verifyIssued(harness, token, {
      typ: 'deputy-id+jwt',
      audience: harness.issuer,
    });

    expect(payload.sub).toBe('agent:helper');
    expect(payload).not.toHaveProperty('channel');
    expect(payload).not.toHaveProperty('invoker');
    expect(payload).not.toHaveProperty('thread');
  });
});

describe('identity token refusals', () => {
  const cases = [
    ['shared channel', { channel: 'C06PARTNER' }, 'channel_excluded'],
    ['unknown channel', { channel: 'C99NOPE' }, 'scope_unknown'],
    ['invoker not permitted', { channel: 'C02ENG', invoker: 'U03CAROL' }, 'invoker_not_permitted'],
    ['DM of someone else', { channel: 'dm:U01ALICE', invoker: 'U02BOB' }, 'invoker_not_permitted'],
    ['missing required invoker', { channel: 'C04LEGAL' }, 'invoker_required'],
    ['unknown DM member', { channel: 'dm:U99NOBODY', invoker: 'U99NOBODY' }, 'scope_unknown'],
  ] as const;

  it.each(cases)('rejects %s', async (_name, parameters, reason) => {
    const reply = await requestIdentityToken(harness, basic, parameters);

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_grant',
      error_description: `no identity token: ${reason}`,
    });
  });

  it('rejects a disabled agent', async () => {
    const archivist = await registerClient(harness, 'archivist', 'client_secret_basic');
    const reply = await requestIdentityToken(harness, archivist, { channel: 'C02ENG' });

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_grant',
      error_description: 'no identity token: agent_disabled',
    });
  });

  it('rejects a thread with spaces', async () => {
    const reply = await requestIdentityToken(harness, basic, { thread: 'two words' });

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_request',
      error_description: 'thread must be 1 to 200 printable ASCII characters',
    });
  });
});

describe('client authentication', () => {
  const failed = { error: 'invalid_client', error_description: 'client authentication failed' };

  it('rejects a wrong client secret', async () => {
    const wrong = { ...basic, auth: oauth.ClientSecretBasic(`${basic.secret}x`) };
    const reply = await requestIdentityToken(harness, wrong, { channel: 'C02ENG' });

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual(failed);
    expect(reply.headers.get('www-authenticate')).toBe('Basic realm="deputy"');
  });

  it('rejects a secret sent by another method', async () => {
    const posted = { ...basic, auth: oauth.ClientSecretPost(basic.secret as string) };
    const reply = await requestIdentityToken(harness, posted, { channel: 'C02ENG' });

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual(failed);
  });

  it('rejects an unknown client id', async () => {
    const unknown = {
      ...basic,
      client: { client_id: 'dpc_000000000000000000000000' },
      auth: oauth.ClientSecretBasic(basic.secret as string),
    };
    const reply = await requestIdentityToken(harness, unknown, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual(failed);
  });

  it('rejects a request without authentication', async () => {
    const anonymous = { ...basic, auth: oauth.None() };
    const reply = await requestIdentityToken(harness, anonymous, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'client authentication is required',
    });
  });

  it('rejects a replayed client assertion', async () => {
    let sent: URLSearchParams | undefined;
    const response = await oauth.clientCredentialsGrantRequest(
      harness.as,
      keyed.client,
      keyed.auth,
      { channel: 'C02ENG' },
      {
        ...INSECURE,
        [oauth.customFetch]: async (url, options) => {
          sent = new URLSearchParams(options.body);
          return await fetch(url, options);
        },
      },
    );
    expect(response.status).toBe(200);

    const replayed = await fetch(harness.as.token_endpoint!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: sent,
    });
    const reply = await readReply(harness, replayed);
    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'the client assertion was already used',
    });
  });

  it('rejects a second assertion with a used jti', async () => {
    const jti = `fixed-${Date.now()}`;
    const sameJti = {
      ...keyed,
      auth: oauth.PrivateKeyJwt(keyed.key!, {
        [oauth.modifyAssertion]: (_header, payload) => {
          payload.jti = jti;
        },
      }),
    };

    expect((await requestIdentityToken(harness, sameJti, {})).status).toBe(200);
    const reply = await requestIdentityToken(harness, sameJti, {});
    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'the client assertion was already used',
    });
  });

  it('accepts the token endpoint as assertion audience', async () => {
    const toEndpoint = {
      ...keyed,
      auth: oauth.PrivateKeyJwt(keyed.key!, {
        [oauth.modifyAssertion]: (_header, payload) => {
          payload.aud = harness.as.token_endpoint;
        },
      }),
    };

    expect((await requestIdentityToken(harness, toEndpoint, {})).status).toBe(200);
  });

  const assertionCases = [
    [
      'a wrong audience',
      (payload: Record<string, unknown>) => {
        payload.aud = 'https://elsewhere.example';
      },
      'ERR_TOKEN_AUDIENCE',
    ],
    [
      'an expired assertion',
      (payload: Record<string, unknown>) => {
        const now = Math.floor(Date.now() / 1000);
        payload.iat = now - 200;
        payload.nbf = now - 200;
        payload.exp = now - 100;
      },
      'ERR_TOKEN_EXPIRED',
    ],
    [
      'a lifetime over 300 seconds',
      (payload: Record<string, unknown>) => {
        payload.exp = (payload.iat as number) + 301;
      },
      'ERR_TOKEN_CLAIMS',
    ],
  ] as const;

  it.each(assertionCases)('rejects %s', async (_name, change, code) => {
    const modified = {
      ...keyed,
      auth: oauth.PrivateKeyJwt(keyed.key!, {
        [oauth.modifyAssertion]: (_header, payload) => change(payload as Record<string, unknown>),
      }),
    };
    const reply = await requestIdentityToken(harness, modified, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: `client assertion rejected: ${code}`,
    });
  });

  it('rejects an assertion from an unregistered key', async () => {
    const pair = await oauth.generateKeyPair('ES256');
    const impostor = {
      ...keyed,
      auth: oauth.PrivateKeyJwt({ key: pair.privateKey, kid: keyed.key!.kid as string }),
    };
    const reply = await requestIdentityToken(harness, impostor, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'client assertion rejected: ERR_TOKEN_SIGNATURE',
    });
  });

  it('rejects an HS256 assertion', async () => {
    const hmac = { ...keyed, auth: oauth.ClientSecretJwt('a-shared-secret-of-32-characters!') };
    const reply = await requestIdentityToken(harness, hmac, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'client assertion rejected: ERR_TOKEN_ALG',
    });
  });

  it('rejects an assertion with another sub', async () => {
    const otherSub = {
      ...keyed,
      auth: oauth.PrivateKeyJwt(keyed.key!, {
        [oauth.modifyAssertion]: (_header, payload) => {
          payload.sub = basic.client.client_id;
        },
      }),
    };
    const reply = await requestIdentityToken(harness, otherSub, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'the client assertion needs sub equal to the client id, jti and exp',
    });
  });

  it('rejects a client_id that is not the assertion issuer', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      harness.as,
      keyed.client,
      keyed.auth,
      {},
      {
        ...INSECURE,
        [oauth.customFetch]: async (url, options) => {
          options.body.set('client_id', basic.client.client_id);
          return await fetch(url, options);
        },
      },
    );
    const reply = await readReply(harness, response);

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'client_id does not match the client assertion',
    });
  });

  it('rejects an assertion naming a secret client', async () => {
    const asSecretClient = {
      ...keyed,
      client: { client_id: basic.client.client_id },
    };
    const reply = await requestIdentityToken(harness, asSecretClient, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual(failed);
  });

  it('rejects two authentication methods', async () => {
    const both = {
      ...basic,
      auth: (async (as, client, body, headers) => {
        await oauth.ClientSecretBasic(basic.secret as string)(as, client, body, headers);
        body.set('client_secret', basic.secret as string);
      }) as oauth.ClientAuth,
    };
    const reply = await requestIdentityToken(harness, both, {});

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_request',
      error_description: 'use exactly one client authentication method',
    });
  });

  it('rejects Basic credentials without a colon', async () => {
    const response = await fetch(harness.as.token_endpoint!, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(basic.client.client_id).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    const reply = await readReply(harness, response);

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'malformed Basic credentials',
    });
  });

  it('rejects registering a private JWK', async () => {
    const pair = await oauth.generateKeyPair('ES256', { extractable: true });
    const privateJwk = await crypto.subtle.exportKey('jwk', pair.privateKey);
    const created = await callApi(
      harness,
      'POST',
      '/admin/v1/workspaces/acme/agents/helper/clients',
      harness.keys.admin,
      { auth_method: 'private_key_jwt', jwks: { keys: [{ ...privateJwk, kid: 'leaked' }] } },
    );

    expect(created.status).toBe(400);
    expect(created.body).toEqual({
      error: 'invalid_request',
      error_description:
        'the JWK set must hold public keys only: remove private and symmetric keys',
    });
  });

  it('rejects an assertion with an unknown kid', async () => {
    const pair = await oauth.generateKeyPair('ES256');
    const impostor = {
      ...keyed,
      auth: oauth.PrivateKeyJwt({ key: pair.privateKey, kid: 'not-registered' }),
    };
    const reply = await requestIdentityToken(harness, impostor, {});

    expect(reply.status).toBe(401);
    expect(reply.body).toEqual({
      error: 'invalid_client',
      error_description: 'client assertion rejected: ERR_TOKEN_KID',
    });
  });
});

describe('token endpoint requests', () => {
  /** Posts a raw body to the token endpoint with the helper's Basic credentials. */
  async function postToken(body: string, contentType: string) {
    const credentials = Buffer.from(`${basic.client.client_id}:${basic.secret}`).toString('base64');
    const response = await fetch(harness.as.token_endpoint!, {
      method: 'POST',
      headers: { 'content-type': contentType, authorization: `Basic ${credentials}` },
      body,
    });
    return await readReply(harness, response);
  }

  it('rejects an unsupported grant type', async () => {
    const response = await oauth.genericTokenEndpointRequest(
      harness.as,
      basic.client,
      basic.auth,
      'password',
      { username: 'alice', password: 'secret' },
      INSECURE,
    );
    const reply = await readReply(harness, response);

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'unsupported_grant_type',
      error_description: `use client_credentials or ${TOKEN_EXCHANGE}`,
    });
  });

  it('rejects a repeated channel', async () => {
    const reply = await requestIdentityToken(harness, basic, [
      ['channel', 'C02ENG'],
      ['channel', 'C01GENERAL'],
    ]);

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_request',
      error_description: 'channel must appear at most once',
    });
  });

  it('rejects a repeated invoker', async () => {
    const reply = await requestIdentityToken(harness, basic, [
      ['channel', 'C02ENG'],
      ['invoker', 'U01ALICE'],
      ['invoker', 'U02BOB'],
    ]);

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_request',
      error_description: 'invoker must appear at most once',
    });
  });

  it('rejects a repeated grant type', async () => {
    const reply = await postToken(
      'grant_type=client_credentials&grant_type=client_credentials',
      'application/x-www-form-urlencoded',
    );

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_request',
      error_description: 'grant_type must appear at most once',
    });
  });

  // Known bug: RFC 6749, section 5.2 makes a missing required parameter invalid_request, but
  // a request without grant_type gets unsupported_grant_type.
  it('rejects a missing grant type as invalid_request', async () => {
    const reply = await postToken('channel=C02ENG', 'application/x-www-form-urlencoded');

    expect(reply.status).toBe(400);
    expect(reply.body.error).toBe('invalid_request');
  });

  it('rejects a JSON body', async () => {
    const reply = await postToken(
      JSON.stringify({ grant_type: 'client_credentials' }),
      'application/json',
    );

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      error: 'invalid_request',
      error_description: 'the body must be application/x-www-form-urlencoded',
    });
  });

  it('accepts the form body it rejects as JSON', async () => {
    const reply = await postToken(
      'grant_type=client_credentials&channel=C02ENG',
      'application/x-www-form-urlencoded',
    );

    expect(reply.status).toBe(200);
    expect(reply.body.token_type).toBe('Bearer');
    expect(reply.headers.get('cache-control')).toBe('no-store');
    expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
  });
});

describe('signing key rotation', () => {
  it('keeps older tokens verifiable', async () => {
    const before = await identityToken(harness, basic, { channel: 'C02ENG' });
    const oldKid = await currentKid();

    await harness.deputy.signingKeys.rotate();
    const after = await identityToken(harness, basic, { channel: 'C02ENG' });
    const response = await fetch(`${harness.issuer}/oauth/jwks`);
    const jwks = (await response.json()) as { keys: JWK[] };

    expect(jwks.keys.map((key) => key.kid)).toEqual([await currentKid(), oldKid]);
    expect(jwks.keys[0]!.kid).not.toBe(oldKid);
    const verifiedBefore = await verifyIssued(harness, before, {
      typ: 'deputy-id+jwt',
      audience: harness.issuer,
    });
    const verifiedAfter = await verifyIssued(harness, after, {
      typ: 'deputy-id+jwt',
      audience: harness.issuer,
    });
    expect(verifiedBefore.header.kid).toBe(oldKid);
    expect(verifiedAfter.header.kid).toBe(jwks.keys[0]!.kid);
    expect((await introspect(harness, basic, before)).body.active).toBe(true);
  });
});
