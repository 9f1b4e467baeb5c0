/**
 * The Deputy control plane as one object: storage, the compiled policy engine, API keys,
 * sealed secrets and the audit log. The HTTP API and the CLI are thin layers over it.
 */
import type { Logger } from 'pino';

import { AuditLog } from './audit/log.js';
import type { AuditRecordInput } from './audit/event.js';
import type { CompiledWorkspace } from './engine/compiled.js';
import { PolicyEngine } from './engine/engine.js';
import { onEvaluationError } from './engine/decide.js';
import type { Decision, DecisionRequest } from './engine/types.js';
import { type AuditSigningKey, deriveAuditSigningKey } from './keys/audit-signing-key.js';
import { loadMasterKey } from './keys/master-key.js';
import type { Policy } from './model/policy.js';
import { ApiKeyStore, type Role } from './storage/api-keys.js';
import { type Database, type DatabaseOptions, openDatabase } from './storage/database.js';
import { RevisionConflictError, RevisionStore } from './storage/revisions.js';
import { SecretStore } from './storage/secrets.js';
import { RuntimeClientStore } from './oauth/clients.js';
import { RevocationStore } from './tokens/revocations.js';
import { SigningKeyStore } from './tokens/signing-keys.js';

export interface DeputyOptions {
  /** Database location: a SQLite path, `postgres://…` or `pglite:[DIR]`. */
  database: string;
  /** SQLite commit durability, see {@link DatabaseOptions}. @default 'full' */
  sqliteSynchronous?: 'full' | 'normal';
  /** Directory for the master key file when DEPUTY_MASTER_KEY is not set. */
  dataDir: string;
  logger: Logger;
  env?: Readonly<Record<string, string | undefined>>;
  /** Events between signed audit checkpoints. @default 1000 */
  checkpointEvery?: number;
  /** Milliseconds between signed audit checkpoints while events arrive. @default 10000 */
  checkpointIntervalMs?: number;
  /** Maximum lifetime of any token Deputy signs, in seconds. @default 3600 */
  maxTokenLifetimeSeconds?: number;
  /**
   * Milliseconds between checks for revisions written by another process (another node, or
   * `deputy apply`). 0 disables the check. @default 1000
   */
  refreshIntervalMs?: number;
}

/** The actor behind an audited operation, and the request it belongs to. */
export interface CallContext {
  readonly actor: AuditRecordInput['actor'];
  readonly requestId: string | null;
}

export class Deputy {
  readonly database: Database;
  readonly engine = new PolicyEngine();
  readonly revisions: RevisionStore;
  readonly keys: ApiKeyStore;
  readonly secrets: SecretStore;
  readonly signingKeys: SigningKeyStore;
  readonly revocations: RevocationStore;
  readonly clients: RuntimeClientStore;
  readonly audit: AuditLog;
  readonly logger: Logger;
  /** Public half of the checkpoint signing key, for `verifyAudit`. */
  readonly auditPublicKey: AuditSigningKey['publicKey'];
  #refreshTimer: NodeJS.Timeout | undefined;

  private constructor(
    database: Database,
    audit: AuditLog,
    masterKey: Uint8Array,
    signingKey: AuditSigningKey,
    logger: Logger,
    maxTokenLifetimeSeconds: number,
  ) {
    this.database = database;
    this.auditPublicKey = signingKey.publicKey;
    this.audit = audit;
    this.logger = logger;
    this.revisions = new RevisionStore(database.db);
    this.keys = new ApiKeyStore(database.db);
    this.secrets = new SecretStore(database.db, masterKey);
    this.signingKeys = new SigningKeyStore(database.db, masterKey, { maxTokenLifetimeSeconds });
    this.revocations = new RevocationStore(database.db);
    this.clients = new RuntimeClientStore(database.db);
  }

  static async open(options: DeputyOptions): Promise<Deputy> {
    const masterKey = await loadMasterKey({
      dataDir: options.dataDir,
      ...(options.env ? { env: options.env } : {}),
    });
    const database = await openDatabase(options.database, {
      ...(options.sqliteSynchronous ? { sqliteSynchronous: options.sqliteSynchronous } : {}),
    });
    try {
      const signingKey = deriveAuditSigningKey(masterKey.key);
      const audit = await AuditLog.open(database, {
        signingKey,
        logger: options.logger,
        ...(options.checkpointEvery ? { checkpointEvery: options.checkpointEvery } : {}),
        ...(options.checkpointIntervalMs
          ? { checkpointIntervalMs: options.checkpointIntervalMs }
          : {}),
      });
      const deputy = new Deputy(
        database,
        audit,
        masterKey.key,
        signingKey,
        options.logger,
        options.maxTokenLifetimeSeconds ?? 3600,
      );
      onEvaluationError((error) =>
        options.logger.error({ err: error }, 'decision evaluation failed'),
      );
      await deputy.keys.refresh();
      await deputy.reload();
      // The first signing key exists before the JWKS is first served.
      await deputy.signingKeys.current();
      deputy.#startRefresh(options.refreshIntervalMs ?? 1000);
      return deputy;
    } catch (error) {
      await database.close();
      throw error;
    }
  }

  /**
   * Loads the current revision of every stored workspace that is newer than the loaded one,
   * and the API keys, runtime clients, revocations and signing keys, so changes made by
   * another process take effect here.
   */
  async reload(): Promise<void> {
    await this.keys.refresh();
    await this.clients.refresh();
    await this.revocations.refresh();
    await this.signingKeys.refresh();
    for (const workspace of await this.revisions.workspaces()) {
      const current = await this.revisions.current(workspace);
      if (current && current.revision > this.engine.revision(workspace)) {
        await this.#load(current.policy, current.revision);
        this.logger.info({ workspace, revision: current.revision }, 'policy revision loaded');
      }
    }
  }

  /**
   * Makes a revision active. Agents it removes or disables, and identities it disables, get
   * their tokens revoked up to now, however the revision was written: the kill switch, an admin
   * API edit, a policy file, or another process whose revision this one loads late.
   */
  async #load(policy: Policy, revision: number): Promise<void> {
    const previous = this.engine.workspace(policy.workspace.id);
    const next = this.engine.load(policy, revision);
    if (!previous || next.revision !== revision) return;

    const now = Math.floor(Date.now() / 1000);
    for (const principal of newlyDisabled(previous, next)) {
      await this.revocations.revokePrincipal(next.id, principal, now);
    }

    // A removed agent's runtime clients go with it: an agent created later under the same id
    // registers its own.
    for (const client of this.clients.list(next.id)) {
      if (!next.agents.has(client.agent) && client.disabledAt === null) {
        await this.clients.disable(client.clientId);
        this.logger.info(
          { workspace: next.id, clientId: client.clientId },
          'runtime client of a removed agent disabled',
        );
      }
    }
  }

  #startRefresh(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.#refreshTimer = setInterval(() => {
      this.reload().catch((error) => this.logger.error({ err: error }, 'policy reload failed'));
    }, intervalMs);
    this.#refreshTimer.unref();
  }

  /**
   * Stores `policy` as a new revision based on `expected`, makes it active and records the
   * change. Throws RevisionConflictError when `expected` is stale.
   */
  async apply(
    policy: Policy,
    expected: number,
    summary: string,
    call: CallContext,
    type = 'policy.apply',
  ): Promise<number> {
    const workspace = policy.workspace.id;
    // A stale write is rejected before it is recorded as a change. A writer that slips in
    // between this check and the insert still gets the conflict, recorded as a failed change.
    const latest = (await this.revisions.current(workspace))?.revision ?? 0;
    if (latest !== expected) throw new RevisionConflictError(workspace, expected, latest);

    // The change is recorded before it is stored: nothing takes effect without its record.
    await this.audit.append({
      type,
      workspace,
      actor: call.actor,
      revision: expected + 1,
      request_id: call.requestId,
      detail: { summary, previous_revision: expected },
    });

    const actor = `${call.actor.type}:${call.actor.id}`;
    let revision: number;
    try {
      revision = await this.revisions.append(policy, { expected, actor, summary });
    } catch (error) {
      await this.#recordFailure(`${type}.failed`, workspace, call, error);
      throw error;
    }
    await this.#load(policy, revision);
    return revision;
  }

  async #recordFailure(type: string, workspace: string, call: CallContext, error: unknown) {
    const code = (error as { code?: unknown } | null)?.code;
    try {
      await this.audit.append({
        type,
        workspace,
        actor: call.actor,
        request_id: call.requestId,
        detail: { error: typeof code === 'string' ? code : 'failed' },
      });
    } catch (auditError) {
      this.logger.error({ err: auditError, requestId: call.requestId }, 'audit write failed');
    }
  }

  /**
   * Decides and records each request. If the audit log cannot record a decision, every
   * decision of the call becomes a deny with reason `audit_unavailable`: nothing is allowed without
   * its record.
   */
  async decide(
    requests: readonly DecisionRequest[],
    call: CallContext,
    now?: number,
  ): Promise<Decision[]> {
    const decisions = requests.map((request) => this.engine.decide(request, now));
    try {
      await this.audit.appendMany(decisions.map((decision) => decisionRecord(decision, call)));
      return decisions;
    } catch (error) {
      this.logger.error({ err: error, requestId: call.requestId }, 'audit write failed; denying');
      return decisions.map((decision) => ({
        ...decision,
        allowed: false,
        reason: 'audit_unavailable' as const,
      }));
    }
  }

  /** Creates an API key and records who created it. The key itself is never recorded. */
  async createKey(
    role: Role,
    label: string,
    call: CallContext,
  ): Promise<{ id: string; key: string }> {
    const created = await this.keys.create(role, label);
    await this.audit.append({
      type: 'key.create',
      actor: call.actor,
      request_id: call.requestId,
      detail: { key_id: created.id, role, label },
    });
    return created;
  }

  /** Registers a runtime client for an agent; the secret, if any, is returned once. */
  async createClient(input: Parameters<RuntimeClientStore['create']>[0], call: CallContext) {
    const created = await this.clients.create(input);
    await this.audit.append({
      type: 'client.create',
      workspace: input.workspace,
      actor: call.actor,
      request_id: call.requestId,
      detail: {
        client_id: created.client.clientId,
        agent: input.agent,
        auth_method: input.authMethod,
      },
    });
    return created;
  }

  async disableClient(clientId: string, call: CallContext): Promise<boolean> {
    const client = this.clients.get(clientId);
    await this.audit.append({
      type: 'client.disable',
      workspace: client?.workspace ?? null,
      actor: call.actor,
      request_id: call.requestId,
      detail: { client_id: clientId },
    });
    return await this.clients.disable(clientId);
  }

  async revokeKey(id: string, call: CallContext): Promise<boolean> {
    const revoked = await this.keys.revoke(id);
    if (revoked) {
      await this.audit.append({
        type: 'key.revoke',
        actor: call.actor,
        request_id: call.requestId,
        detail: { key_id: id },
      });
    }
    return revoked;
  }

  async close(): Promise<void> {
    clearInterval(this.#refreshTimer);
    try {
      await this.audit.close();
    } finally {
      await this.database.close();
    }
  }
}

/** Principals that were active in `previous` and are removed or disabled in `next`. */
function newlyDisabled(previous: CompiledWorkspace, next: CompiledWorkspace): string[] {
  const principals: string[] = [];
  for (const [agent, status] of previous.agents) {
    if (status === 'active' && next.agents.get(agent) !== 'active')
      principals.push(`agent:${agent}/*`);
  }
  for (const [agent, identities] of next.disabledIdentities) {
    const before = previous.disabledIdentities.get(agent);
    for (const identity of identities) {
      if (!before?.has(identity)) principals.push(identity);
    }
  }
  return principals;
}

function decisionRecord(decision: Decision, call: CallContext): AuditRecordInput {
  return {
    type: 'decision',
    workspace: decision.workspace,
    actor: { type: 'agent', id: decision.agent },
    identity: decision.identity,
    invoker: decision.invoker,
    scope: decision.scope,
    action: decision.action,
    resource: decision.resource,
    decision: decision.allowed ? 'allow' : 'deny',
    reason: decision.reason,
    bundle: decision.bundle,
    grant: decision.grant,
    connection: decision.connection,
    revision: decision.revision,
    decision_id: decision.decisionId,
    request_id: call.requestId,
    detail:
      call.actor.type === 'api_key'
        ? {
            caller: call.actor.id,
            ...(decision.guardrail ? { guardrail: decision.guardrail } : {}),
          }
        : decision.guardrail
          ? { guardrail: decision.guardrail }
          : null,
  };
}
