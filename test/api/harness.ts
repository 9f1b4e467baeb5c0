/**
 * A Deputy on a fresh database, optionally with the acme example applied, its HTTP API driven
 * through `app.inject`, and one API key per role.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import pino from 'pino';

import { buildServer } from '../../src/api/server.js';
import type { StoredAuditEvent } from '../../src/audit/event.js';
import { maxSeqOf, readAuditEvents } from '../../src/audit/read.js';
import { parsePolicyText } from '../../src/config/load.js';
import { type CallContext, Deputy } from '../../src/deputy.js';
import type { Policy } from '../../src/model/policy.js';

export const ACME_FILE = fileURLToPath(new URL('../../examples/acme/deputy.yaml', import.meta.url));

export const PUBLIC_URL = 'https://pdp.deputy.test';

/** The call context of the set-up steps, as `deputy apply` would record it. */
export const SETUP_CALL: CallContext = { actor: { type: 'cli', id: 'test' }, requestId: null };

/** Parses the acme example afresh, so callers may change the result. */
export function readAcme(): Policy {
  return parsePolicyText(readFileSync(ACME_FILE, 'utf8'), 'examples/acme/deputy.yaml');
}

export interface HarnessOptions {
  /** Database location. @default a SQLite file in a temporary directory */
  database?: string;
  /** Policy applied as revision 1, or null for an empty store. @default the acme example */
  policy?: Policy | null;
}

export interface Harness {
  deputy: Deputy;
  app: Awaited<ReturnType<typeof buildServer>>;
  /** One API key of each role, as `Bearer` tokens take them. */
  keys: { admin: string; pep: string; auditor: string };
  keyIds: { admin: string; pep: string; auditor: string };
  /** Temporary directory for the master key and the default SQLite file. */
  dataDir: string;
  close(): Promise<void>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'deputy-api-'));
  const logger = pino({ level: 'silent' });
  const deputy = await Deputy.open({
    database: options.database ?? join(dataDir, 'deputy.db'),
    dataDir,
    logger,
    env: { DEPUTY_MASTER_KEY: randomBytes(32).toString('base64') },
    refreshIntervalMs: 0,
  });
  const policy = options.policy === undefined ? readAcme() : options.policy;
  if (policy !== null) await deputy.apply(policy, 0, 'test', SETUP_CALL);

  const admin = await deputy.createKey('admin', 'test admin', SETUP_CALL);
  const pep = await deputy.createKey('pep', 'test pep', SETUP_CALL);
  const auditor = await deputy.createKey('auditor', 'test auditor', SETUP_CALL);
  const app = await buildServer({ deputy, logger, publicUrl: PUBLIC_URL });

  return {
    deputy,
    app,
    keys: { admin: admin.key, pep: pep.key, auditor: auditor.key },
    keyIds: { admin: admin.id, pep: pep.id, auditor: auditor.id },
    dataDir,
    async close() {
      await app.close();
      await deputy.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Reads every audit event with a seq above `afterSeq`, in order. */
export async function auditEventsAfter(deputy: Deputy, afterSeq = 0): Promise<StoredAuditEvent[]> {
  const events: StoredAuditEvent[] = [];
  let after = afterSeq;
  for (;;) {
    const page = await readAuditEvents(deputy.database, { afterSeq: after, limit: 1000 });
    events.push(...page.events);
    if (page.nextAfterSeq === null) return events;
    after = page.nextAfterSeq;
  }
}

/** Returns the seq of the newest audit event, 0 when the log is empty. */
export async function lastAuditSeq(deputy: Deputy): Promise<number> {
  return await maxSeqOf(deputy.database.db, 'audit_events');
}
