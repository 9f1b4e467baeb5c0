import type { Logger } from 'pino';

/** Minimum milliseconds between two error logs about failed audit writes. */
const LOG_INTERVAL_MS = 10_000;

/**
 * Logs failed audit transactions without flooding the log during an outage: the first
 * failure at once, then at most one line per 10 seconds with the count of failures since the
 * previous line, and one line when writes succeed again.
 */
export class WriteFailureLog {
  #failures = 0;
  #suppressed = 0;
  #lastLoggedAt = 0;

  constructor(private readonly logger: Logger | undefined) {}

  record(error: unknown, events: number): void {
    this.#failures += 1;
    const now = Date.now();
    if (this.#failures > 1 && now - this.#lastLoggedAt < LOG_INTERVAL_MS) {
      this.#suppressed += 1;
      return;
    }

    this.logger?.error(
      { err: error, events, failedBatches: this.#failures, suppressed: this.#suppressed },
      'audit write failed; the appends in this batch were rejected',
    );
    this.#suppressed = 0;
    this.#lastLoggedAt = now;
  }

  recordSuccess(): void {
    if (this.#failures === 0) return;

    this.logger?.info({ failedBatches: this.#failures }, 'audit writes succeed again');
    this.#failures = 0;
    this.#suppressed = 0;
  }
}
