/**
 * A per-second limit on audit events that unauthenticated callers can cause, so they cannot
 * flood the log. Past the limit events are only counted, and the next recorded event carries
 * the count.
 */
export class AuditRateLimit {
  readonly #perSecond: number;
  #second = 0;
  #inSecond = 0;
  #suppressed = 0;

  /** @param perSecond Maximum events recorded per second. */
  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  /**
   * Counts one event. Returns null when it must not be recorded, otherwise the number of
   * events suppressed since the last recorded one.
   */
  admit(now = Date.now()): number | null {
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#inSecond = 0;
    }
    if (++this.#inSecond > this.#perSecond) {
      this.#suppressed++;
      return null;
    }
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
