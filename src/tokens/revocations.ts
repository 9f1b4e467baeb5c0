/**
 * Revocation state: single tokens by `jti`, and whole agents or single identities by time.
 * Reads come from an in-memory cache, so a check costs no query.
 */
import type { Kysely } from 'kysely';

import type { Tables } from '../storage/schema.js';

/**
 * How long a revoked token's row outlives its `exp`, in seconds, so a token still accepted
 * within a verifier's clock tolerance stays revoked.
 */
const PURGE_MARGIN_SECONDS = 300;

/**
 * An identity (`agent:<id>`, `agent:<id>/channel:<channel>` or `member:<id>`), or `agent:<id>/*`
 * for every identity of an agent. Ids contain no `/`.
 */
const PRINCIPAL = /^(agent:[^/\s]+(\/channel:[^/\s]+|\/\*)?|member:[^/\s]+)$/;

export interface RevocationStoreOptions {
  /** Clock, replaced in tests. @default () => new Date() */
  now?: () => Date;
}

/** The claims {@link RevocationStore.isInactive} reads from a verified token. */
export interface RevocableClaims {
  /** Token id, checked against revoked tokens. */
  jti?: unknown;
  /** Issue time in seconds since the epoch, compared with principal revocations. */
  iat?: unknown;
  /** The identity the token names. */
  sub?: unknown;
  /** The workspace the identity belongs to. */
  workspace?: unknown;
  /** The agent id, needed when `sub` is a member the agent acts as in a DM. */
  agent?: unknown;
}

/**
 * Revoked tokens and principals. Writes update the cache at once, and `refresh()` reloads it
 * so one process loads revocations made by another. Call `refresh()` once before the first
 * read, and then periodically: a revocation made elsewhere takes effect here at the next one.
 */
export class RevocationStore {
  readonly #db: Kysely<Tables>;
  readonly #now: () => Date;
  /** Expiry of each revoked token, by `jti`. */
  #tokens: Map<string, number> | null = null;
  /** Revocation time of each principal, by workspace and then principal. */
  readonly #principals = new Map<string, Map<string, number>>();

  constructor(db: Kysely<Tables>, options: RevocationStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? (() => new Date());
  }

  /** Revokes the token `jti` until `exp`, its expiry in seconds since the epoch. */
  async revokeToken(jti: string, exp: number): Promise<void> {
    if (typeof jti !== 'string' || jti === '') {
      throw new TypeError('jti must be a non-empty string');
    }
    const expiry = toSeconds(exp, 'exp');
    await this.#db
      .insertInto('revoked_tokens')
      .values({ jti, exp: expiry })
      .onConflict((conflict) =>
        conflict
          .column('jti')
          .doUpdateSet({ exp: (eb) => eb.ref('excluded.exp') })
          .where('revoked_tokens.exp', '<', (eb) => eb.ref('excluded.exp')),
      )
      .execute();

    const tokens = this.#tokens;
    tokens?.set(jti, Math.max(tokens.get(jti) ?? 0, expiry));
  }

  isTokenRevoked(jti: string): boolean {
    return this.#loadedTokens().has(jti);
  }

  /**
   * Revokes every token of `principal` in `workspace` issued at or before `at`, in seconds
   * since the epoch (fractions are dropped, as in `iat`). `agent:<id>` covers every identity
   * of the agent. The latest time is kept and never deleted, so enabling the principal again
   * leaves its older tokens revoked.
   */
  async revokePrincipal(workspace: string, principal: string, at: number): Promise<void> {
    checkPrincipal(workspace, principal);
    const revokedAt = toSeconds(at, 'at');
    await this.#db
      .insertInto('principal_revocations')
      .values({ workspace, principal, revoked_at: revokedAt })
      .onConflict((conflict) =>
        conflict
          .columns(['workspace', 'principal'])
          .doUpdateSet({ revoked_at: (eb) => eb.ref('excluded.revoked_at') })
          .where('principal_revocations.revoked_at', '<', (eb) => eb.ref('excluded.revoked_at')),
      )
      .execute();

    const known = this.#principals.get(workspace)?.get(principal) ?? 0;
    setRevocation(this.#principals, workspace, principal, Math.max(known, revokedAt));
  }

  /** Returns the latest revocation time of `principal`, in seconds since the epoch, or null. */
  revokedSince(workspace: string, principal: string): number | null {
    this.#loadedTokens();
    return this.#principals.get(workspace)?.get(principal) ?? null;
  }

  /**
   * Returns whether a verified token is inactive: its `jti` is revoked, or its `iat` is at or
   * before the revocation time of its identity (`sub`) or of its whole agent (`agent:<id>/*`).
   * The agent comes from the `agent` claim, or from a `sub` of the form `agent:<id>…`. A
   * missing claim or one of the wrong type makes the token inactive.
   */
  isInactive(claims: RevocableClaims): boolean {
    const { jti, iat, sub, workspace } = claims;
    if (typeof jti !== 'string' || typeof iat !== 'number' || !Number.isFinite(iat)) return true;
    if (typeof sub !== 'string' || typeof workspace !== 'string') return true;
    if (this.isTokenRevoked(jti)) return true;

    const principals = [sub];
    const agentOfSub = /^agent:[^/]+/.exec(sub)?.[0];
    if (agentOfSub !== undefined) principals.push(`${agentOfSub}/*`);
    if (claims.agent !== undefined) {
      if (typeof claims.agent !== 'string') return true;
      principals.push(`agent:${claims.agent}/*`);
    }

    return principals.some((principal) => {
      const revokedAt = this.revokedSince(workspace, principal);
      return revokedAt !== null && iat <= revokedAt;
    });
  }

  /**
   * Deletes revoked tokens past their expiry, then reloads the cache from the database. Rows
   * are never deleted otherwise, so the cache keeps what it had: a write that lands while
   * the reload runs is not lost.
   */
  async refresh(): Promise<void> {
    const cutoff = Math.floor(this.#now().getTime() / 1000) - PURGE_MARGIN_SECONDS;
    await this.#db.deleteFrom('revoked_tokens').where('exp', '<', cutoff).execute();
    const tokenRows = await this.#db.selectFrom('revoked_tokens').selectAll().execute();
    const principalRows = await this.#db.selectFrom('principal_revocations').selectAll().execute();

    const tokens = new Map([...(this.#tokens ?? [])].filter(([, exp]) => exp >= cutoff));
    for (const row of tokenRows) {
      tokens.set(row.jti, Math.max(tokens.get(row.jti) ?? 0, Number(row.exp)));
    }
    for (const row of principalRows) {
      const known = this.#principals.get(row.workspace)?.get(row.principal) ?? 0;
      const revokedAt = Math.max(known, Number(row.revoked_at));
      setRevocation(this.#principals, row.workspace, row.principal, revokedAt);
    }
    this.#tokens = tokens;
  }

  /** The revoked-token cache. Throws before the first refresh, so no read passes unchecked. */
  #loadedTokens(): Map<string, number> {
    if (this.#tokens === null) {
      throw new Error('revocations are not loaded: call refresh() first');
    }
    return this.#tokens;
  }
}

function toSeconds(value: number, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a time in seconds since the epoch`);
  }
  return Math.floor(value);
}

function checkPrincipal(workspace: string, principal: string): void {
  if (typeof workspace !== 'string' || workspace === '') {
    throw new TypeError('workspace must be a non-empty string');
  }
  if (typeof principal !== 'string' || !PRINCIPAL.test(principal)) {
    throw new TypeError(
      `invalid principal ${JSON.stringify(principal)}: use agent:<id>, ` +
        'agent:<id>/channel:<channel> or member:<id>',
    );
  }
}

function setRevocation(
  principals: Map<string, Map<string, number>>,
  workspace: string,
  principal: string,
  revokedAt: number,
): void {
  let byPrincipal = principals.get(workspace);
  if (byPrincipal === undefined) {
    byPrincipal = new Map();
    principals.set(workspace, byPrincipal);
  }
  byPrincipal.set(principal, revokedAt);
}
