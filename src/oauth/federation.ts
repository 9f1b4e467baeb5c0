import type { JSONWebKeySet } from 'jose';

import type { Federation } from '../model/policy.js';
import { fetchJwks } from '../tokens/fetch-jwks.js';
import { verifyExternalToken } from '../tokens/verify.js';
import type { VerifiedPayload } from '../tokens/types.js';

/** How long a fetched JWK set is reused before it is fetched again, in milliseconds. */
const JWKS_CACHE_MS = 5 * 60 * 1000;

const fetched = new Map<string, { jwks: JSONWebKeySet; at: number }>();

/**
 * Returns the trusted issuer's keys: inline ones, or the set at its configured `jwks_uri`. The
 * URL comes from the policy, never from the token.
 */
async function keysOf(issuer: Federation): Promise<JSONWebKeySet> {
  if (issuer.jwks !== undefined) return issuer.jwks as JSONWebKeySet;

  const uri = issuer.jwks_uri as string;
  const cached = fetched.get(uri);
  if (cached && Date.now() - cached.at < JWKS_CACHE_MS) return cached.jwks;
  const jwks = await fetchJwks(uri, { timeoutMs: 3000, maxBytes: 64 * 1024 });
  fetched.set(uri, { jwks, at: Date.now() });
  return jwks;
}

/** Verifies an external identity token against a trusted issuer of the policy. */
export async function verifyFederatedToken(
  token: string,
  issuer: Federation,
  defaultAudience: string,
): Promise<VerifiedPayload> {
  return await verifyExternalToken(token, {
    issuer: issuer.issuer,
    jwks: await keysOf(issuer),
    audience: issuer.audience ?? defaultAudience,
    algorithms: issuer.algorithms,
  });
}

/** Reads a mapped claim as a string, or `undefined` when it is absent. */
export function claimOf(payload: VerifiedPayload, name: string): string | undefined {
  const value = (payload as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}
