import type { Database } from '../storage/database.js';
import { canonicalizeJson } from './canonical.js';
import { toOcsf } from './ocsf.js';
import { checkAfterSeq, parseStoredEvent, scanEventRows } from './read.js';

export interface ExportAuditOptions {
  /** `jsonl`: each event with its hash. `ocsf`: each event as an OCSF API Activity event. */
  format: 'jsonl' | 'ocsf';
  /** Only events of this workspace. */
  workspace?: string;
  /** Only events after this seq. @default 0 */
  afterSeq?: number;
  /** Events read per query. @default 1000 */
  pageSize?: number;
}

/**
 * Yields one JSON line per event in seq order, without the trailing newline. Lines are RFC
 * 8785 canonical JSON, so the same event always exports to the same bytes.
 */
export async function* exportAudit(
  database: Database,
  options: ExportAuditOptions,
): AsyncGenerator<string> {
  if (options.format !== 'jsonl' && options.format !== 'ocsf') {
    throw new TypeError(`format must be jsonl or ocsf, got ${String(options.format)}`);
  }
  const rows = scanEventRows(database.db, {
    afterSeq: checkAfterSeq(options.afterSeq),
    pageSize: options.pageSize ?? 1000,
    ...(options.workspace !== undefined ? { workspace: options.workspace } : {}),
  });

  for await (const row of rows) {
    const event = parseStoredEvent(row);
    yield canonicalizeJson(options.format === 'ocsf' ? toOcsf(event) : event);
  }
}
