import type { Logger } from 'pino';

import type { AuditSigningKey } from '../keys/audit-signing-key.js';
import type { Database } from '../storage/database.js';
import { type ChainHead, chainRecords, signCheckpoint, type TimedRecord } from './chain.js';
import { AuditError } from './errors.js';
import { type AuditEvent, type AuditRecordInput, normalizeAuditRecord } from './event.js';
import { type AuditStore, type ChainWrite, createAuditStore } from './store.js';
import { WriteFailureLog } from './write-failure-log.js';

export interface AuditLogOptions {
  /** Key that signs checkpoints, from `deriveAuditSigningKey`. */
  signingKey: AuditSigningKey;
  /** Events this process appends between two checkpoints. @default 1000 */
  checkpointEvery?: number;
  /**
   * Milliseconds between timed checkpoints, written only when this process appended events
   * since the last one. 0 disables the timer. @default 10000
   */
  checkpointIntervalMs?: number;
  /** Maximum events per transaction. @default 2048 */
  maxBatch?: number;
  /** Clock for event and checkpoint times. @default () => new Date() */
  now?: () => Date;
  logger?: Logger;
}

/** Counters since the log was opened, for benchmarks and start-up checks. */
export interface AuditLogStats {
  /** Events committed. */
  events: number;
  /** Transactions that committed events or a checkpoint. */
  batches: number;
  /** Checkpoints written, counting any that another process had already written. */
  checkpoints: number;
  /** Transactions that failed and rejected their appends. */
  failedBatches: number;
  /** Maximum events committed in one transaction. */
  largestBatch: number;
}

/** An appendMany call waiting in the queue. Its records are committed together. */
interface PendingAppend {
  items: TimedRecord[];
  resolve(events: AuditEvent[]): void;
  reject(error: Error): void;
  promise: Promise<AuditEvent[]>;
}

/** A caller of {@link AuditLog.requestCheckpoint} waiting for the checkpoint's transaction. */
interface CheckpointWaiter {
  resolve(): void;
  reject(error: Error): void;
}

/**
 * The tamper-evident audit log: a hash chain of events in `audit_events`, with signed
 * checkpoints in `audit_checkpoints`.
 *
 * Appends are group-committed: while one transaction runs, new records queue, and the next
 * transaction writes all of them (up to `maxBatch`). An append resolves only after its
 * transaction commits. Every transaction reads the chain head under a lock, so several
 * processes sharing one database extend one chain.
 */
export class AuditLog {
  readonly #store: AuditStore;
  readonly #signingKey: AuditSigningKey;
  readonly #checkpointEvery: number;
  readonly #maxBatch: number;
  readonly #now: () => Date;
  readonly #logger: Logger | undefined;
  readonly #failures: WriteFailureLog;

  readonly #queue: PendingAppend[] = [];
  #inFlight: PendingAppend[] = [];
  #checkpointWaiters: CheckpointWaiter[] = [];
  #draining: Promise<void> | null = null;
  /** Events this process committed since its last checkpoint. */
  #uncheckpointed = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Starts a drain for deferred appends that no other append has taken along. */
  #deferredTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | null = null;
  readonly #stats: AuditLogStats = {
    events: 0,
    batches: 0,
    checkpoints: 0,
    failedBatches: 0,
    largestBatch: 0,
  };

  private constructor(
    store: AuditStore,
    options: Required<Omit<AuditLogOptions, 'logger'>> & {
      logger: Logger | undefined;
    },
  ) {
    this.#store = store;
    this.#signingKey = options.signingKey;
    this.#checkpointEvery = options.checkpointEvery;
    this.#maxBatch = options.maxBatch;
    this.#now = options.now;
    this.#logger = options.logger;
    this.#failures = new WriteFailureLog(options.logger);
    this.#startTimer(options.checkpointIntervalMs);
  }

  /** Opens the log on a migrated database and reads the chain head to check access. */
  static async open(database: Database, options: AuditLogOptions): Promise<AuditLog> {
    const resolved = resolveOptions(options);
    const store = createAuditStore(database);
    const head = await store.readHead();

    const log = new AuditLog(store, resolved);
    resolved.logger?.info(
      { seq: head.seq, keyId: resolved.signingKey.keyId, backend: database.kind },
      'audit log opened',
    );
    return log;
  }

  /**
   * Appends one record and resolves with the committed event. Rejects with a TypeError for an
   * invalid record, and with an AuditError (ERR_AUDIT_WRITE_FAILED or ERR_AUDIT_CLOSED) when
   * nothing was committed, so the caller can fail closed.
   */
  async append(record: AuditRecordInput): Promise<AuditEvent> {
    const [event] = await this.appendMany([record]);
    return event!;
  }

  /**
   * Appends a record that nothing waits for, such as the outcome of a call already completed:
   * it joins the next transaction that another append starts, or one started within
   * `delayMs`, so it rarely costs a commit of its own. Settles like {@link append}.
   */
  async appendDeferred(record: AuditRecordInput, delayMs = 20): Promise<AuditEvent> {
    const [event] = await this.#enqueue([record], false, delayMs);
    return event!;
  }

  /** Appends records as consecutive events in one transaction, like {@link append}. */
  async appendMany(records: readonly AuditRecordInput[]): Promise<AuditEvent[]> {
    return await this.#enqueue(records, true, 0);
  }

  async #enqueue(
    records: readonly AuditRecordInput[],
    now: boolean,
    delayMs: number,
  ): Promise<AuditEvent[]> {
    if (this.#closing !== null) {
      throw new AuditError('ERR_AUDIT_CLOSED', 'the audit log is closed, so no event was written');
    }
    const time = this.#now().toISOString();
    const items = records.map((record) => ({ record: normalizeAuditRecord(record), time }));
    if (items.length === 0) return [];

    let resolve!: (events: AuditEvent[]) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<AuditEvent[]>((onResolve, onReject) => {
      resolve = onResolve;
      reject = onReject;
    });
    this.#queue.push({ items, resolve, reject, promise });
    if (now) this.#scheduleDrain();
    else this.#scheduleDeferredDrain(delayMs);
    return await promise;
  }

  #scheduleDeferredDrain(delayMs: number): void {
    if (this.#deferredTimer !== undefined) return;
    this.#deferredTimer = setTimeout(() => {
      this.#deferredTimer = undefined;
      this.#scheduleDrain();
    }, delayMs);
  }

  /** Waits until every append made before the call has been committed or rejected. */
  async flush(): Promise<void> {
    if (this.#queue.length > 0) this.#scheduleDrain();
    const pending = [...this.#inFlight, ...this.#queue].map((entry) => entry.promise);
    await Promise.allSettled(pending);
  }

  /**
   * Writes a checkpoint for the current chain head in its own transaction, or in the next
   * batch's. Rejects with ERR_AUDIT_WRITE_FAILED when the transaction fails.
   */
  async requestCheckpoint(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#checkpointWaiters.push({ resolve, reject });
      this.#scheduleDrain();
    });
  }

  /**
   * Rejects new appends, waits for queued ones, writes a final checkpoint when this process
   * appended events since the last one, and stops the timer. It does not close the database.
   */
  async close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    await this.#closing;
  }

  stats(): AuditLogStats {
    return { ...this.#stats };
  }

  async #shutDown(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    if (this.#uncheckpointed > 0) {
      await this.requestCheckpoint();
    }
    this.#logger?.info({ ...this.#stats }, 'audit log closed');
  }

  #startTimer(intervalMs: number): void {
    if (intervalMs === 0) return;

    this.#timer = setInterval(() => {
      if (this.#uncheckpointed === 0 || this.#checkpointWaiters.length > 0) return;
      // The write logs a failure, and the next tick tries again.
      this.requestCheckpoint().catch(() => {});
    }, intervalMs);
    this.#timer.unref();
  }

  #scheduleDrain(): void {
    if (this.#draining !== null) return;

    this.#draining = this.#drain().finally(() => {
      this.#draining = null;
      // An append may have arrived after the loop's last check and before this callback.
      if (this.#queue.length > 0 || this.#checkpointWaiters.length > 0) {
        this.#scheduleDrain();
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 || this.#checkpointWaiters.length > 0) {
      // Wait for the end of this event-loop turn, so that appends made by every I/O callback
      // of the turn join one transaction. This adds no timer delay.
      await new Promise((resolve) => setImmediate(resolve));

      this.#inFlight = this.#takeBatch();
      const waiters = this.#checkpointWaiters.splice(0);
      await this.#writeBatch(this.#inFlight, waiters);
      this.#inFlight = [];
    }
  }

  /** Takes whole appendMany calls from the queue, up to maxBatch events (at least one call). */
  #takeBatch(): PendingAppend[] {
    let count = 0;
    let entryCount = 0;
    for (const entry of this.#queue) {
      if (entryCount > 0 && count + entry.items.length > this.#maxBatch) break;
      count += entry.items.length;
      entryCount += 1;
    }
    return this.#queue.splice(0, entryCount);
  }

  /**
   * Writes one transaction and settles its appends and checkpoint waiters. A failed write
   * rejects them instead of throwing.
   */
  async #writeBatch(batch: PendingAppend[], waiters: CheckpointWaiter[]): Promise<void> {
    const items = batch.flatMap((entry) => entry.items);
    let events: AuditEvent[] = [];
    let checkpointed = false;

    try {
      await this.#store.write((head) => {
        const write = this.#buildWrite(items, head, waiters.length > 0);
        events = write.events;
        checkpointed = write.rows.checkpoint !== null;
        return write.rows;
      });
    } catch (error) {
      const failure = new AuditError(
        'ERR_AUDIT_WRITE_FAILED',
        `failed to write ${items.length} audit ${items.length === 1 ? 'event' : 'events'} ` +
          'to the database (see the cause)',
        { cause: error },
      );
      batch.forEach((entry) => entry.reject(failure));
      waiters.forEach((waiter) => waiter.reject(failure));

      this.#stats.failedBatches += 1;
      this.#failures.record(error, items.length);
      return;
    }

    this.#failures.recordSuccess();
    this.#countWrite(events.length, checkpointed);
    let offset = 0;
    for (const entry of batch) {
      entry.resolve(events.slice(offset, offset + entry.items.length));
      offset += entry.items.length;
    }
    waiters.forEach((waiter) => waiter.resolve());
  }

  /** Chains the records after `head` and adds a checkpoint when one is due or requested. */
  #buildWrite(
    items: TimedRecord[],
    head: ChainHead,
    checkpointRequested: boolean,
  ): { events: AuditEvent[]; rows: ChainWrite } {
    const { events, rows } = chainRecords(items, head);
    const last = rows.at(-1) ?? head;

    const due = this.#uncheckpointed + rows.length >= this.#checkpointEvery;
    const checkpoint =
      (due || checkpointRequested) && last.seq > 0
        ? signCheckpoint(last, this.#now().toISOString(), this.#signingKey)
        : null;
    return { events, rows: { events: rows, checkpoint } };
  }

  #countWrite(eventCount: number, checkpointed: boolean): void {
    this.#stats.events += eventCount;
    this.#stats.batches += 1;
    this.#stats.largestBatch = Math.max(this.#stats.largestBatch, eventCount);
    this.#uncheckpointed += eventCount;
    if (checkpointed) {
      this.#stats.checkpoints += 1;
      this.#uncheckpointed = 0;
    }
  }
}

function resolveOptions(options: AuditLogOptions) {
  const resolved = {
    signingKey: options.signingKey,
    checkpointEvery: options.checkpointEvery ?? 1000,
    checkpointIntervalMs: options.checkpointIntervalMs ?? 10_000,
    maxBatch: options.maxBatch ?? 2048,
    now: options.now ?? (() => new Date()),
    logger: options.logger,
  };

  if (typeof resolved.signingKey?.keyId !== 'string' || !resolved.signingKey.privateKey) {
    throw new TypeError('signingKey must be the result of deriveAuditSigningKey');
  }
  checkInteger('checkpointEvery', resolved.checkpointEvery, 1);
  checkInteger('checkpointIntervalMs', resolved.checkpointIntervalMs, 0);
  checkInteger('maxBatch', resolved.maxBatch, 1);
  return resolved;
}

function checkInteger(name: string, value: number, minimum: number): void {
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw new TypeError(`${name} must be an integer of at least ${minimum}, got ${value}`);
  }
}
