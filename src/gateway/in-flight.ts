/**
 * Calls in flight through the gateway, aborted when their token stops being active: the kill
 * switch, a revocation or a policy change reaches calls already forwarded, not only the next.
 */

/** A call in flight and the check of its caller's token. */
interface Entry {
  readonly isActive: () => boolean;
  readonly controller: AbortController;
}

/** Reason of an abort by {@link InFlightCalls}, to tell it from other aborts. */
const REVOKED = Symbol('revoked');

export class InFlightCalls {
  readonly #entries = new Set<Entry>();
  readonly #timer: NodeJS.Timeout;

  /** @param intervalMs Milliseconds between checks of the tokens of calls in flight. */
  constructor(intervalMs = 250) {
    this.#timer = setInterval(() => this.sweep(), intervalMs);
    this.#timer.unref();
  }

  /**
   * Runs `call` with a signal that aborts when `isActive` fails, and with `ensureActive`, which
   * the call runs right before it sends anything. Throws a CallRevokedError when the token was
   * already inactive (`sent` false) or the abort ended the call (`sent` true).
   */
  async run<T>(
    isActive: () => boolean,
    call: (signal: AbortSignal, ensureActive: () => void) => Promise<T>,
  ): Promise<T> {
    const entry = { isActive, controller: new AbortController() };
    const ensureActive = () => {
      if (entry.controller.signal.aborted || !isActive()) throw new CallRevokedError(false);
    };
    ensureActive();
    this.#entries.add(entry);
    try {
      return await call(entry.controller.signal, ensureActive);
    } catch (error) {
      if (entry.controller.signal.reason === REVOKED) throw new CallRevokedError(true);
      throw error;
    } finally {
      this.#entries.delete(entry);
    }
  }

  /** Aborts the calls whose token is no longer active. */
  sweep(): void {
    for (const entry of this.#entries) {
      let active: boolean;
      try {
        active = entry.isActive();
      } catch {
        active = false;
      }
      if (!active) {
        this.#entries.delete(entry);
        entry.controller.abort(REVOKED);
      }
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

/** A call stopped because its token stopped being active while it ran. */
export class CallRevokedError extends Error {
  readonly reason = 'token_revoked';
  /** Whether the call may have reached the upstream before it was stopped. */
  readonly sent: boolean;

  constructor(sent: boolean) {
    super('the access token was revoked or disabled while the call ran');
    this.name = 'CallRevokedError';
    this.sent = sent;
  }
}
