import type { AuditEventTable } from '../storage/schema.js';
import { hashEventBody } from './chain.js';
import { GENESIS_HASH } from './event.js';

/** Kinds of tampering and damage that `verifyAudit` reports. */
export type AuditProblemKind =
  /** The body is not a JSON event. */
  | 'malformed'
  /** The body no longer matches the hash it was stored with. */
  | 'modified'
  /** The hash column was changed, but the body still matches the chain. */
  | 'hash_mismatch'
  /** The time, workspace or type column differs from the body. */
  | 'column_mismatch'
  /** The event is stored at a seq other than the one in its body. */
  | 'reordered'
  /** Events or a checkpointed event are missing from the middle of the chain. */
  | 'deleted'
  /** An event sits between two events that link to each other. */
  | 'inserted'
  /** An event's prev does not match the hash of the event before it. */
  | 'broken_link'
  /** A checkpoint covers events after the last stored one. */
  | 'truncated'
  | 'missing_checkpoint'
  /** A checkpoint's hash differs from the hash of the event at its seq. */
  | 'rewritten'
  | 'bad_signature'
  /** A checkpoint was signed by a key that is not among the given public keys. */
  | 'unknown_key';

export interface AuditProblem {
  seq: number;
  kind: AuditProblemKind;
  message: string;
}

/** State of a checked event that the checks of later events need. */
export interface VerifiedLink {
  seq: number;
  /** Hashes the next event's prev may match: the stored one, and the body's when they differ. */
  hashes: string[];
  /** Set when the body and hash column differ, until the next event shows which one changed. */
  mismatch: { bodyHash: string; evidence: string | null } | null;
  invalid: boolean;
  /** Whether the event's position is already reported, so a broken link after it is expected. */
  displaced: boolean;
}

interface ParsedBody {
  seq: number;
  prev: string;
  time: unknown;
  workspace: unknown;
  type: unknown;
}

/**
 * Checks stored events one at a time, in seq order, and collects problems. Memory use is
 * constant: only the last two events are kept.
 */
export class ChainVerifier {
  total = 0;
  invalid = 0;
  readonly problems: AuditProblem[] = [];
  omittedProblems = 0;

  #previous: VerifiedLink | null = null;
  #beforePrevious: VerifiedLink | null = null;

  constructor(private readonly maxProblems: number) {}

  /** Checks the next stored event and returns what later checks need about it. */
  addEvent(row: AuditEventTable): VerifiedLink {
    this.total += 1;
    const previous = this.#previous;
    const expectedSeq = (previous?.seq ?? 0) + 1;
    const gap = row.seq !== expectedSeq;
    if (gap) {
      this.#reportGap(expectedSeq, row.seq);
    }

    const link: VerifiedLink = {
      seq: row.seq,
      hashes: [row.hash],
      mismatch: null,
      invalid: gap,
      displaced: row.seq < expectedSeq,
    };
    const body = parseBody(row.body);
    this.#settleMismatch(previous, gap || body === null ? null : body.prev);

    if (body === null) {
      this.#flag(link, 'malformed', 'the body is not a JSON audit event');
      link.displaced = true;
    } else {
      this.#checkHash(row, link);
      this.#checkColumns(row, body, link);
      if (!gap) this.#checkLink(body, link, previous);
    }

    this.#beforePrevious = previous;
    this.#previous = link;
    if (link.invalid) this.invalid += 1;
    return link;
  }

  /** Records a checkpoint's hash for `link`, which shows which side of a mismatch changed. */
  addCheckpointEvidence(link: VerifiedLink, checkpointHash: string): void {
    if (link.mismatch !== null) {
      link.mismatch.evidence = checkpointHash;
    }
  }

  /** Reports the last event's unresolved mismatch. Call it after the last event. */
  finish(): void {
    this.#settleMismatch(this.#previous, null);
  }

  report(seq: number, kind: AuditProblemKind, message: string): void {
    if (this.problems.length < this.maxProblems) {
      this.problems.push({ seq, kind, message });
    } else {
      this.omittedProblems += 1;
    }
  }

  #flag(link: VerifiedLink, kind: AuditProblemKind, message: string): void {
    this.report(link.seq, kind, message);
    link.invalid = true;
  }

  #reportGap(expectedSeq: number, foundSeq: number): void {
    if (foundSeq < expectedSeq) {
      this.report(foundSeq, 'inserted', `seq ${foundSeq} is below 1, where the chain starts`);
      return;
    }
    const missing =
      foundSeq - expectedSeq === 1
        ? `event ${expectedSeq} is missing`
        : `events ${expectedSeq} to ${foundSeq - 1} are missing`;
    this.report(expectedSeq, 'deleted', missing);
  }

  #checkHash(row: AuditEventTable, link: VerifiedLink): void {
    const bodyHash = hashEventBody(row.body);
    if (bodyHash === row.hash) return;

    // Which of the two changed shows in the next event's prev (or a checkpoint), so the
    // problem is reported once that evidence is seen.
    link.hashes.push(bodyHash);
    link.mismatch = { bodyHash, evidence: null };
    link.invalid = true;
  }

  /** Reports a pending hash mismatch, using `evidence` (a later link to it) when present. */
  #settleMismatch(link: VerifiedLink | null, evidence: string | null): void {
    const mismatch = link?.mismatch;
    if (!link || !mismatch) return;

    link.mismatch = null;
    if ((evidence ?? mismatch.evidence) === mismatch.bodyHash) {
      this.report(link.seq, 'hash_mismatch', 'the hash column was changed; the body is intact');
    } else {
      this.report(link.seq, 'modified', 'the body does not match the hash it was stored with');
    }
  }

  #checkColumns(row: AuditEventTable, body: ParsedBody, link: VerifiedLink): void {
    if (body.seq !== row.seq) {
      this.#flag(link, 'reordered', `the event has seq ${body.seq} but is stored at ${row.seq}`);
      link.displaced = true;
      return;
    }

    const differing = (['time', 'workspace', 'type'] as const).filter(
      (column) => body[column] !== row[column],
    );
    if (differing.length > 0) {
      const columns = differing.join(', ');
      this.#flag(link, 'column_mismatch', `the ${columns} column differs from the body`);
    }
  }

  #checkLink(body: ParsedBody, link: VerifiedLink, previous: VerifiedLink | null): void {
    const expected = previous?.hashes ?? [GENESIS_HASH];
    if (expected.includes(body.prev)) return;

    // The event links to the one two places back, so the event between them was inserted.
    const skipped = this.#beforePrevious;
    if (previous && skipped?.hashes.includes(body.prev)) {
      this.report(previous.seq, 'inserted', `event ${link.seq} links past this event`);
      if (!previous.invalid) {
        previous.invalid = true;
        this.invalid += 1;
      }
      return;
    }

    if (link.displaced || previous?.displaced) return;
    const before = previous ? `event ${previous.seq}` : 'the chain start';
    this.#flag(
      link,
      'broken_link',
      `prev does not match the hash of ${before}, so one of them was replaced`,
    );
  }
}

function parseBody(body: string): ParsedBody | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  const candidate = parsed as Partial<ParsedBody> | null;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    !Number.isSafeInteger(candidate.seq) ||
    typeof candidate.prev !== 'string'
  ) {
    return null;
  }
  return candidate as ParsedBody;
}
