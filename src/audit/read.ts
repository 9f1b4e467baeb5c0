import type { Kysely } from 'kysely';

import type { Database } from '../storage/database.js';
import type { AuditCheckpointTable, AuditEventTable, Tables } from '../storage/schema.js';
import { AuditError } from './errors.js';
import type { AuditEvent, StoredAuditEvent } from './event.js';

/** Maximum `limit` of {@link readAuditEvents}. */
export const MAX_READ_LIMIT = 1000;

export interface ReadAuditEventsOptions {
  /** Only events of this workspace. */
  workspace?: string;
  /** Only events after this seq, for paging. @default 0 */
  afterSeq?: number;
  /** Maximum events to return, from 1 to 1000. */
  limit: number;
}

export interface AuditEventPage {
  events: StoredAuditEvent[];
  /** `afterSeq` for the next page, or null when this page is the last. */
  nextAfterSeq: number | null;
}

/**
 * Reads events in seq order, for the admin API. Throws an AuditError with code
 * ERR_AUDIT_EVENT_INVALID when a stored body is not JSON.
 */
export async function readAuditEvents(
  database: Database,
  options: ReadAuditEventsOptions,
): Promise<AuditEventPage> {
  const { limit } = options;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_READ_LIMIT) {
    throw new TypeError(`limit must be an integer from 1 to ${MAX_READ_LIMIT}, got ${limit}`);
  }

  const rows = await selectEventRows(database.db, {
    afterSeq: checkAfterSeq(options.afterSeq),
    limit,
    ...(options.workspace !== undefined ? { workspace: options.workspace } : {}),
  });
  const events = rows.map(parseStoredEvent);
  const last = rows.at(-1);
  return { events, nextAfterSeq: rows.length === limit && last ? last.seq : null };
}

export interface EventRowQuery {
  afterSeq: number;
  limit: number;
  workspace?: string;
  /** Only events up to this seq. */
  maxSeq?: number;
}

/** Selects raw event rows in seq order, one page of a keyset scan. */
export async function selectEventRows(
  db: Kysely<Tables>,
  query: EventRowQuery,
): Promise<AuditEventTable[]> {
  let select = db
    .selectFrom('audit_events')
    .selectAll()
    .where('seq', '>', query.afterSeq)
    .orderBy('seq', 'asc')
    .limit(query.limit);
  if (query.workspace !== undefined) {
    select = select.where('workspace', '=', query.workspace);
  }
  if (query.maxSeq !== undefined) {
    select = select.where('seq', '<=', query.maxSeq);
  }

  const rows = await select.execute();
  return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

/** Yields every event row in seq order, reading `pageSize` rows per query. */
export async function* scanEventRows(
  db: Kysely<Tables>,
  query: Omit<EventRowQuery, 'limit'> & { pageSize: number },
): AsyncGenerator<AuditEventTable> {
  let afterSeq = query.afterSeq;
  for (;;) {
    const rows = await selectEventRows(db, { ...query, afterSeq, limit: query.pageSize });
    yield* rows;

    const last = rows.at(-1);
    if (rows.length < query.pageSize || last === undefined) return;
    afterSeq = last.seq;
  }
}

/** Yields checkpoints with seq up to `maxSeq` in seq order, `pageSize` rows per query. */
export async function* scanCheckpoints(
  db: Kysely<Tables>,
  maxSeq: number,
  pageSize: number,
): AsyncGenerator<AuditCheckpointTable> {
  let afterSeq = 0;
  for (;;) {
    const rows = await db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('seq', '>', afterSeq)
      .where('seq', '<=', maxSeq)
      .orderBy('seq', 'asc')
      .limit(pageSize)
      .execute();
    yield* rows.map((row) => ({ ...row, seq: Number(row.seq) }));

    const last = rows.at(-1);
    if (rows.length < pageSize || last === undefined) return;
    afterSeq = Number(last.seq);
  }
}

/** Returns the highest seq of a table, 0 when it is empty. */
export async function maxSeqOf(
  db: Kysely<Tables>,
  table: 'audit_events' | 'audit_checkpoints',
): Promise<number> {
  const row = await db
    .selectFrom(table)
    .select((expression) => expression.fn.max('seq').as('max'))
    .executeTakeFirst();
  return row?.max === null || row?.max === undefined ? 0 : Number(row.max);
}

/** Parses a stored body and adds the row's hash. */
export function parseStoredEvent(row: AuditEventTable): StoredAuditEvent {
  let event: unknown;
  try {
    event = JSON.parse(row.body);
  } catch (error) {
    throw invalidBody(row.seq, error);
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw invalidBody(row.seq);
  }
  return { ...(event as AuditEvent), hash: row.hash };
}

function invalidBody(seq: number, cause?: unknown): AuditError {
  return new AuditError(
    'ERR_AUDIT_EVENT_INVALID',
    `audit event ${seq} has a body that is not a JSON object: run deputy audit verify`,
    cause === undefined ? undefined : { cause },
  );
}

export function checkAfterSeq(afterSeq: number | undefined): number {
  if (afterSeq === undefined) return 0;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
    throw new TypeError(`afterSeq must be a non-negative integer, got ${afterSeq}`);
  }
  return afterSeq;
}
