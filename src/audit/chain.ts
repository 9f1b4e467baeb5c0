import { createHash, sign, verify, type KeyObject } from 'node:crypto';

import type { AuditSigningKey } from '../keys/audit-signing-key.js';
import type { AuditCheckpointTable, AuditEventTable } from '../storage/schema.js';
import { canonicalizeEvent, canonicalizeJson } from './canonical.js';
import type { AuditEvent, AuditRecord } from './event.js';

/** The last event of the chain, or seq 0 with the genesis hash when the chain is empty. */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** A record with the time it was appended, waiting for its place in the chain. */
export interface TimedRecord {
  record: AuditRecord;
  time: string;
}

/** Returns the hex SHA-256 of an event's canonical JSON, its chain hash. */
export function hashEventBody(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('hex');
}

/**
 * Numbers and links records after `head`: each event gets the next seq and the previous
 * event's hash as `prev`. Returns the events and the rows to insert, in chain order.
 */
export function chainRecords(
  items: readonly TimedRecord[],
  head: ChainHead,
): { events: AuditEvent[]; rows: AuditEventTable[] } {
  const events: AuditEvent[] = [];
  const rows: AuditEventTable[] = [];
  let { seq, hash } = head;

  for (const { record, time } of items) {
    seq += 1;
    const event: AuditEvent = { ...record, seq, time, prev: hash };
    const body = canonicalizeEvent(event);
    hash = hashEventBody(body);

    events.push(event);
    rows.push({ seq, time, workspace: event.workspace, type: event.type, body, hash });
  }
  return { events, rows };
}

/** Returns the bytes a checkpoint signature covers: the RFC 8785 JSON of its other columns. */
export function checkpointPayload(checkpoint: Omit<AuditCheckpointTable, 'signature'>): Buffer {
  const { seq, hash, time, key_id } = checkpoint;
  return Buffer.from(canonicalizeJson({ seq, hash, time, key_id }), 'utf8');
}

/** Signs a statement that the chain contained `head` at `time`. */
export function signCheckpoint(
  head: ChainHead,
  time: string,
  signingKey: AuditSigningKey,
): AuditCheckpointTable {
  const unsigned = { seq: head.seq, hash: head.hash, time, key_id: signingKey.keyId };
  const signature = sign(null, checkpointPayload(unsigned), signingKey.privateKey);
  return { ...unsigned, signature: signature.toString('base64url') };
}

/** Checks a checkpoint's Ed25519 signature. A malformed signature counts as invalid. */
export function verifyCheckpointSignature(
  checkpoint: AuditCheckpointTable,
  publicKey: KeyObject,
): boolean {
  if (!/^[A-Za-z0-9_-]+$/.test(checkpoint.signature)) return false;

  const signature = Buffer.from(checkpoint.signature, 'base64url');
  try {
    return verify(null, checkpointPayload(checkpoint), publicKey, signature);
  } catch {
    return false;
  }
}
