import type { KeyObject } from 'node:crypto';

import { auditKeyId } from '../keys/audit-signing-key.js';
import type { Database } from '../storage/database.js';
import type { AuditCheckpointTable } from '../storage/schema.js';
import { verifyCheckpointSignature } from './chain.js';
import { maxSeqOf, scanCheckpoints, scanEventRows } from './read.js';
import { type AuditProblem, ChainVerifier, type VerifiedLink } from './verify-chain.js';

export interface VerifyAuditOptions {
  /** Rows read per query. @default 1000 */
  pageSize?: number;
  /** Maximum problems listed in the report. The rest are only counted. @default 1000 */
  maxProblems?: number;
  /**
   * Maximum number of events between two checkpoints, and after the last one. A log writes one at
   * least every `checkpointEvery` events plus one batch, so the default leaves room for the
   * defaults (1000 and 2048) twice over, for restarts and several writers. A longer stretch
   * means checkpoints were deleted, which would otherwise hide a rewrite. @default 6096
   */
  maxCheckpointGap?: number;
}

export interface AuditVerifyReport {
  events: { total: number; valid: number };
  checkpoints: { total: number; valid: number };
  ok: boolean;
  /** Problems in seq order. */
  problems: AuditProblem[];
  /** Problems found beyond `maxProblems`. */
  omittedProblems: number;
  /**
   * Highest seq covered by a valid checkpoint, or null. Events after it are protected by the
   * hash chain only: someone with write access could rewrite them without detection.
   */
  lastCheckpointSeq: number | null;
}

/**
 * Checks the whole audit chain and every checkpoint against the given Ed25519 public keys,
 * reading the tables in pages. Events and checkpoints added while it runs are not checked.
 */
export async function verifyAudit(
  database: Database,
  publicKeys: KeyObject | readonly KeyObject[],
  options: VerifyAuditOptions = {},
): Promise<AuditVerifyReport> {
  const pageSize = options.pageSize ?? 1000;
  const keys = new Map(
    [publicKeys].flat().map((key): [string, KeyObject] => [auditKeyId(key), key]),
  );
  const chain = new ChainVerifier(options.maxProblems ?? 1000);

  // Checkpoints are written with or after their event, so reading their bound first
  // guarantees that every checkpoint checked has its event among the rows read after.
  const checkpointBound = await maxSeqOf(database.db, 'audit_checkpoints');
  const eventBound = await maxSeqOf(database.db, 'audit_events');
  const checkpoints = new CheckpointCursor(scanCheckpoints(database.db, checkpointBound, pageSize));
  const counts = { total: 0, valid: 0, lastValidSeq: null as number | null };

  const maxGap = options.maxCheckpointGap ?? 6096;
  let coveredUpTo = 0;
  const events = scanEventRows(database.db, { afterSeq: 0, maxSeq: eventBound, pageSize });
  for await (const row of events) {
    const link = chain.addEvent(row);
    for (const checkpoint of await checkpoints.takeUpTo(row.seq)) {
      const valid = checkCheckpoint(checkpoint, checkpoint.seq === row.seq ? link : null);
      countCheckpoint(counts, checkpoint, valid);
      if (valid) coveredUpTo = checkpoint.seq;
    }
    if (row.seq - coveredUpTo > maxGap) {
      chain.report(
        row.seq,
        'missing_checkpoint',
        `no valid checkpoint in the ${maxGap} events before this one: checkpoints were deleted`,
      );
      coveredUpTo = row.seq;
    }
  }
  chain.finish();

  for (const checkpoint of await checkpoints.takeUpTo(Number.MAX_SAFE_INTEGER)) {
    chain.report(
      checkpoint.seq,
      'truncated',
      `a checkpoint covers event ${checkpoint.seq}, after the last stored event`,
    );
    checkSignature(checkpoint);
    countCheckpoint(counts, checkpoint, false);
  }

  return buildReport(chain, counts);

  /** Checks the signature and, when `link` is the checkpointed event, the hash. */
  function checkCheckpoint(checkpoint: AuditCheckpointTable, link: VerifiedLink | null): boolean {
    const signed = checkSignature(checkpoint);
    if (link === null) {
      chain.report(checkpoint.seq, 'deleted', 'the event this checkpoint covers is missing');
      return false;
    }

    chain.addCheckpointEvidence(link, checkpoint.hash);
    if (!link.hashes.includes(checkpoint.hash)) {
      chain.report(
        checkpoint.seq,
        'rewritten',
        'the checkpoint hash differs from the stored event, so the chain was rewritten',
      );
      return false;
    }
    return signed;
  }

  function checkSignature(checkpoint: AuditCheckpointTable): boolean {
    const key = keys.get(checkpoint.key_id);
    if (key === undefined) {
      const message = `the checkpoint is signed by key ${checkpoint.key_id}, which is not given`;
      chain.report(checkpoint.seq, 'unknown_key', message);
      return false;
    }
    if (!verifyCheckpointSignature(checkpoint, key)) {
      chain.report(checkpoint.seq, 'bad_signature', 'the checkpoint signature is invalid');
      return false;
    }
    return true;
  }
}

/** Formats a report as `X/Y events valid, A/B checkpoints valid` and one line per problem. */
export function formatVerifyReport(report: AuditVerifyReport): string {
  const { events, checkpoints } = report;
  const lines = [
    `${events.valid}/${events.total} events valid, ` +
      `${checkpoints.valid}/${checkpoints.total} checkpoints valid`,
    ...report.problems.map((problem) => `seq ${problem.seq}: ${problem.kind}: ${problem.message}`),
  ];
  if (report.omittedProblems > 0) {
    lines.push(`${report.omittedProblems} more problems not listed`);
  }
  return lines.join('\n');
}

interface CheckpointCounts {
  total: number;
  valid: number;
  lastValidSeq: number | null;
}

function countCheckpoint(
  counts: CheckpointCounts,
  checkpoint: AuditCheckpointTable,
  valid: boolean,
): void {
  counts.total += 1;
  if (!valid) return;
  counts.valid += 1;
  counts.lastValidSeq = checkpoint.seq;
}

function buildReport(chain: ChainVerifier, counts: CheckpointCounts): AuditVerifyReport {
  // Problems come in scan order, and a stable sort keeps each seq's problems in that order.
  const problems = [...chain.problems].sort((a, b) => a.seq - b.seq);
  const events = { total: chain.total, valid: chain.total - chain.invalid };
  const checkpoints = { total: counts.total, valid: counts.valid };
  return {
    events,
    checkpoints,
    ok: problems.length === 0 && chain.omittedProblems === 0,
    problems,
    omittedProblems: chain.omittedProblems,
    lastCheckpointSeq: counts.lastValidSeq,
  };
}

/** Reads checkpoints in seq order alongside the event scan. */
class CheckpointCursor {
  #next: AuditCheckpointTable | undefined;
  #started = false;

  constructor(private readonly rows: AsyncGenerator<AuditCheckpointTable>) {}

  /** Returns the checkpoints with seq up to `seq` that were not returned yet. */
  async takeUpTo(seq: number): Promise<AuditCheckpointTable[]> {
    if (!this.#started) {
      this.#started = true;
      await this.#advance();
    }

    const checkpoints: AuditCheckpointTable[] = [];
    while (this.#next !== undefined && this.#next.seq <= seq) {
      checkpoints.push(this.#next);
      await this.#advance();
    }
    return checkpoints;
  }

  async #advance(): Promise<void> {
    const result = await this.rows.next();
    this.#next = result.done ? undefined : result.value;
  }
}
