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
  /** Creator of the revision: `key:<id>` for an API key, `cli` for `deputy apply`. */
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

/**
 * A token signing key. The private JWK is sealed with the master key and bound to its `kid`.
 * `not_after` is null while the key is current. A retired key is published until `not_after`.
 */
export interface SigningKeyTable {
  /** RFC 7638 JWK thumbprint (SHA-256) of the public key. */
  kid: string;
  alg: string;
  public_jwk: string;
  sealed_private: string;
  created_at: string;
  retired_at: string | null;
  not_after: string | null;
}

/** A revoked token, kept until its `exp` (seconds since the epoch) has passed. */
export interface RevokedTokenTable {
  jti: string;
  exp: number;
}

/**
 * The latest revocation of an agent (`agent:<id>`) or one identity of it: tokens issued at or
 * before `revoked_at` (seconds since the epoch) are inactive.
 */
export interface PrincipalRevocationTable {
  workspace: string;
  principal: string;
  revoked_at: number;
}

/** A registered agent runtime client. Only the SHA-256 of a client secret is stored. */
export interface RuntimeClientTable {
  client_id: string;
  workspace: string;
  agent: string;
  auth_method: string;
  secret_hash: string | null;
  /** Public JWK set, for `private_key_jwt` clients. */
  jwks: string | null;
  label: string;
  created_at: string;
  disabled_at: string | null;
}

/** A client assertion id, kept until its expiry (seconds since the epoch) to stop replays. */
export interface ClientAssertionTable {
  jti: string;
  exp: number;
}

export interface Tables {
  runtime_clients: RuntimeClientTable;
  client_assertions: ClientAssertionTable;
  revisions: RevisionTable;
  api_keys: ApiKeyTable;
  secrets: SecretTable;
  audit_events: AuditEventTable;
  audit_checkpoints: AuditCheckpointTable;
  signing_keys: SigningKeyTable;
  revoked_tokens: RevokedTokenTable;
  principal_revocations: PrincipalRevocationTable;
}
