/**
 * Reads a compact JWT's header or payload WITHOUT verifying it. Use it only to route a token to
 * the verifier that decides about it (which issuer, which client's keys, which type), or to
 * read back a token Deputy has just signed. Never base a decision on it.
 */
export function peekJwt(token: string, part: 'header' | 'payload'): Record<string, unknown> | null {
  const segment = token.split('.')[part === 'header' ? 0 : 1];
  if (segment === undefined) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Reads one string claim without verifying; see {@link peekJwt}. */
export function peekClaim(token: string, name: string): string | undefined {
  const value = peekJwt(token, 'payload')?.[name];
  return typeof value === 'string' ? value : undefined;
}
