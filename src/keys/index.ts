export {
  type AuditSigningKey,
  auditKeyId,
  deriveAuditSigningKey,
  exportPublicKeyPem,
  importPublicKeyPem,
} from './audit-signing-key.js';
export { KeyError, type KeyErrorCode } from './errors.js';
export {
  decodeMasterKey,
  loadMasterKey,
  type LoadMasterKeyOptions,
  MASTER_KEY_BYTES,
  MASTER_KEY_ENV,
  MASTER_KEY_FILE,
  type MasterKey,
} from './master-key.js';
export { seal, unseal } from './seal.js';
