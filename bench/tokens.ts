/**
 * Token signing and verification: Deputy's `signToken` and `verifyToken` next to raw
 * node:crypto ES256 signing and verifying of the same bytes, in one run.
 */
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openDatabase } from '../src/storage/database.js';
import { signToken } from '../src/tokens/issue.js';
import { SigningKeyStore } from '../src/tokens/signing-keys.js';
import { IDENTITY_TOKEN_TYPE } from '../src/tokens/types.js';
import { verifyToken } from '../src/tokens/verify.js';
import type { Measured } from './report.js';

export interface TokenOptions {
  /** Milliseconds each loop runs. */
  durationMs: number;
}

const ISSUER = 'http://127.0.0.1:7420';

const CLAIMS = {
  iss: ISSUER,
  aud: ISSUER,
  sub: 'agent:helper/channel:C04LEGAL',
  client_id: 'dpc_0123456789abcdef01234567',
  workspace: 'acme',
  agent: 'helper',
  channel: 'C04LEGAL',
  invoker: 'U03CAROL',
};

/** Runs `work` back to back for `durationMs` and returns calls per second. */
async function rate(durationMs: number, work: () => unknown): Promise<number> {
  const end = performance.now() + durationMs;
  let calls = 0;
  const started = performance.now();
  while (performance.now() < end) {
    for (let index = 0; index < 64; index++) await work();
    calls += 64;
  }
  return calls / ((performance.now() - started) / 1000);
}

export async function measureTokens(options: TokenOptions): Promise<Measured> {
  const dir = await mkdtemp(join(tmpdir(), 'deputy-bench-tokens-'));
  const database = await openDatabase(join(dir, 'deputy.db'));
  try {
    const store = new SigningKeyStore(database.db, Buffer.alloc(32, 7), {
      maxTokenLifetimeSeconds: 3600,
    });
    const key = await store.current();
    const issue = () =>
      signToken(store, { typ: IDENTITY_TOKEN_TYPE, claims: CLAIMS, lifetimeSeconds: 600 });
    const token = await issue();
    const verifyOptions = { issuer: ISSUER, audience: ISSUER, typ: IDENTITY_TOKEN_TYPE } as const;

    // The raw reference signs and verifies the same header and payload bytes.
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const signingInput = Buffer.from(`${header}.${payload}`);
    const rawSignature = Buffer.from(signature, 'base64url');
    const privateKey = createPrivateKey(key.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const publicKey = createPublicKey(privateKey);
    const p1363 = { dsaEncoding: 'ieee-p1363' as const };

    const issued = await rate(options.durationMs, issue);
    const rawSigned = await rate(options.durationMs, () =>
      sign('sha256', signingInput, { key: privateKey, ...p1363 }).toString('base64url'),
    );
    const verified = await rate(options.durationMs, () => verifyToken(store, token, verifyOptions));
    const rawVerified = await rate(options.durationMs, () =>
      verify('sha256', signingInput, { key: publicKey, ...p1363 }, rawSignature),
    );

    return {
      rows: [
        {
          metric: 'Identity tokens issued per second (signToken)',
          value: issued,
          unit: 'per second',
        },
        {
          metric: 'Raw node:crypto ES256 signatures per second',
          value: rawSigned,
          unit: 'per second',
        },
        {
          metric: 'Issued ÷ raw signing',
          value: (issued / rawSigned) * 100,
          unit: 'percent',
          target: { kind: 'at least', value: 70 },
        },
        { metric: 'Tokens verified per second (verifyToken)', value: verified, unit: 'per second' },
        {
          metric: 'Raw node:crypto ES256 verifications per second',
          value: rawVerified,
          unit: 'per second',
        },
        {
          metric: 'Verified ÷ raw verifying',
          value: (verified / rawVerified) * 100,
          unit: 'percent',
          target: { kind: 'at least', value: 70 },
        },
      ],
      notes: [],
    };
  } finally {
    await database.close();
    await rm(dir, { recursive: true, force: true });
  }
}
