import type { Kysely } from 'kysely';

import { type Policy, policySchema } from '../model/policy.js';
import type { Tables } from './schema.js';

/** A stored policy revision. */
export interface Revision {
  readonly workspace: string;
  readonly revision: number;
  readonly policy: Policy;
  readonly actor: string;
  readonly summary: string;
  readonly createdAt: string;
}

export type RevisionSummary = Omit<Revision, 'policy'>;

/** Raised when a write names a revision that is no longer the current one. */
export class RevisionConflictError extends Error {
  readonly code = 'ERR_REVISION_CONFLICT';
  readonly workspace: string;
  readonly expected: number;
  readonly current: number;

  constructor(workspace: string, expected: number, current: number) {
    super(
      `workspace ${workspace} is at revision ${current}, not ${expected}: ` +
        'reload it and apply the change again',
    );
    this.name = 'RevisionConflictError';
    this.workspace = workspace;
    this.expected = expected;
    this.current = current;
  }
}

/**
 * Numbered, append-only policy revisions per workspace. Writes use optimistic concurrency: a
 * write states the revision it was based on and fails with `RevisionConflictError` when another
 * write got there first, so no update is ever silently lost.
 */
export class RevisionStore {
  readonly #db: Kysely<Tables>;

  constructor(db: Kysely<Tables>) {
    this.#db = db;
  }

  async workspaces(): Promise<string[]> {
    const rows = await this.#db.selectFrom('revisions').select('workspace').distinct().execute();
    return rows.map((row) => row.workspace).sort();
  }

  /** Returns the newest revision of a workspace, or `null` when it has none. */
  async current(workspace: string): Promise<Revision | null> {
    const row = await this.#db
      .selectFrom('revisions')
      .selectAll()
      .where('workspace', '=', workspace)
      .orderBy('revision', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toRevision(row) : null;
  }

  async get(workspace: string, revision: number): Promise<Revision | null> {
    const row = await this.#db
      .selectFrom('revisions')
      .selectAll()
      .where('workspace', '=', workspace)
      .where('revision', '=', revision)
      .executeTakeFirst();
    return row ? toRevision(row) : null;
  }

  async list(workspace: string): Promise<RevisionSummary[]> {
    const rows = await this.#db
      .selectFrom('revisions')
      .select(['workspace', 'revision', 'actor', 'summary', 'created_at'])
      .where('workspace', '=', workspace)
      .orderBy('revision', 'asc')
      .execute();
    return rows.map((row) => ({
      workspace: row.workspace,
      revision: Number(row.revision),
      actor: row.actor,
      summary: row.summary,
      createdAt: row.created_at,
    }));
  }

  /**
   * Stores `policy` as the next revision of its workspace. `expected` is the revision the change
   * was based on (0 for a new workspace). Returns the new revision number.
   */
  async append(
    policy: Policy,
    options: { expected: number; actor: string; summary: string },
  ): Promise<number> {
    const workspace = policy.workspace.id;
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('revisions')
          .select((eb) => eb.fn.max('revision').as('latest'))
          .where('workspace', '=', workspace)
          .executeTakeFirst();
        const current = Number(row?.latest ?? 0);
        if (current !== options.expected) {
          throw new RevisionConflictError(workspace, options.expected, current);
        }

        const revision = current + 1;
        await trx
          .insertInto('revisions')
          .values({
            workspace,
            revision,
            document: JSON.stringify(policy),
            actor: options.actor,
            summary: options.summary,
            created_at: new Date().toISOString(),
          })
          .execute();
        return revision;
      });
    } catch (error) {
      // Two concurrent writers on PostgreSQL both read the same latest revision; the primary key
      // rejects the second insert, which is the same conflict.
      if (isUniqueViolation(error)) {
        const latest = await this.current(workspace);
        throw new RevisionConflictError(workspace, options.expected, latest?.revision ?? 0);
      }
      throw error;
    }
  }
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

function toRevision(row: Tables['revisions']): Revision {
  return {
    workspace: row.workspace,
    revision: Number(row.revision),
    policy: storedPolicy(row),
    actor: row.actor,
    summary: row.summary,
    createdAt: row.created_at,
  };
}

/**
 * Parses a stored document with the current schema, which fills in the defaults of keys added
 * since it was stored (a revision written before connections had `routes`, say).
 */
function storedPolicy(row: Tables['revisions']): Policy {
  const parsed = policySchema.safeParse(JSON.parse(row.document));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `revision ${row.revision} of workspace ${row.workspace} does not match the policy schema ` +
        `at ${issue?.path.join('.') ?? '(root)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
}
