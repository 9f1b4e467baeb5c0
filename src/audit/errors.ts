/** Stable codes of {@link AuditError}. */
export type AuditErrorCode =
  'ERR_AUDIT_WRITE_FAILED' | 'ERR_AUDIT_CLOSED' | 'ERR_AUDIT_EVENT_INVALID';

/**
 * An audit log failure. A caller that gets ERR_AUDIT_WRITE_FAILED or ERR_AUDIT_CLOSED must
 * treat the audited action as not allowed, because no record of it was committed.
 */
export class AuditError extends Error {
  readonly code: AuditErrorCode;

  constructor(code: AuditErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AuditError';
    this.code = code;
  }
}
