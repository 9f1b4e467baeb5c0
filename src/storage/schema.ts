/**
 * Table types shared by every storage backend. Columns hold plain strings and numbers so that
 * SQLite, PostgreSQL and PGlite return the same shapes.
 */

/** One numbered revision of a workspace's policy document. */
export interface RevisionTable {
  workspace: string;
  revision: number;
  /** The normalized policy document as JSON. */
  document: string;
  /** Who created the revision: `key:<id>` for an API key, `cli` for `deputy apply`. */
  actor: string;
  summary: string;
  created_at: string;
}

/** An API key. Only the SHA-256 of the key's secret part is stored. */
export interface ApiKeyTable {
  id: string;
  role: string;
  secret_hash: string;
  label: string;
  created_at: string;
  revoked_at: string | null;
}

/** A connection credential set through the API, sealed with AES-256-GCM. */
export interface SecretTable {
  workspace: string;
  connection: string;
  sealed: string;
  updated_at: string;
}

/** One audit event. `body` is the event's RFC 8785 canonical JSON, `hash` its chain hash. */
export interface AuditEventTable {
  seq: number;
  time: string;
  workspace: string | null;
  type: string;
  body: string;
  hash: string;
}

/** An Ed25519-signed statement that the chain ended at `seq` with `hash`. */
export interface AuditCheckpointTable {
  seq: number;
  hash: string;
  time: string;
  key_id: string;
  signature: string;
}

export interface Tables {
  revisions: RevisionTable;
  api_keys: ApiKeyTable;
  secrets: SecretTable;
  audit_events: AuditEventTable;
  audit_checkpoints: AuditCheckpointTable;
}
