export { canonicalizeEvent, canonicalizeJson } from './canonical.js';
export {
  type ChainHead,
  chainRecords,
  checkpointPayload,
  hashEventBody,
  signCheckpoint,
  verifyCheckpointSignature,
} from './chain.js';
export { AuditError, type AuditErrorCode } from './errors.js';
export {
  type AuditActor,
  type AuditEvent,
  type AuditRecord,
  type AuditRecordInput,
  GENESIS_HASH,
  MAX_DETAIL_LENGTH,
  normalizeAuditRecord,
  type StoredAuditEvent,
} from './event.js';
export { exportAudit, type ExportAuditOptions } from './export.js';
export { AuditLog, type AuditLogOptions, type AuditLogStats } from './log.js';
export { OCSF_VERSION, toOcsf } from './ocsf.js';
export {
  type AuditEventPage,
  MAX_READ_LIMIT,
  readAuditEvents,
  type ReadAuditEventsOptions,
} from './read.js';
export { type AuditProblem, type AuditProblemKind } from './verify-chain.js';
export {
  type AuditVerifyReport,
  formatVerifyReport,
  verifyAudit,
  type VerifyAuditOptions,
} from './verify.js';
