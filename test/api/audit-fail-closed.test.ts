/**
 * Fail-closed decisions: when the audit log cannot record a decision, the API denies it with
 * reason `audit_unavailable`, because nothing may be allowed without its record.
 */
import { rmSync } from 'node:fs';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { verifyAudit } from '../../src/audit/verify.js';
import { type Harness, SETUP_CALL, startHarness } from './harness.js';

const HANDBOOK_READ = {
  subject: { type: 'agent', id: 'helper' },
  action: { name: 'repo.read' },
  resource: { type: 'repo', id: 'acme/handbook' },
};

/** The columns of `audit_events` as the first migration creates them. */
const CREATE_AUDIT_EVENTS =
  'create table audit_events (seq bigint primary key, time text not null, workspace text, ' +
  'type text not null, body text not null, hash text not null)';

let harness: Harness;

function sqlite(target = harness) {
  const handle = target.deputy.database.sqlite;
  if (handle === undefined) throw new Error('the harness must run on SQLite');
  return handle;
}

function dropAuditTable(target = harness): void {
  sqlite(target).exec('drop table audit_events');
}

function post(url: string, payload: unknown, key = harness.keys.pep) {
  return harness.app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${key}` },
    payload: payload as object,
  });
}

describe('audit log unavailable', () => {
  beforeEach(async () => {
    harness = await startHarness();
  });

  afterEach(async () => {
    // Closing writes a final checkpoint, which needs the table back.
    sqlite().exec(CREATE_AUDIT_EVENTS.replace('create table', 'create table if not exists'));
    await harness.close();
  });

  it('allows while the audit log writes', async () => {
    const response = await post('/access/v1/evaluation', HANDBOOK_READ);

    expect(response.statusCode).toBe(200);
    expect(response.json().decision).toBe(true);
    expect(response.json().context.reason).toBe('granted');
  });

  it('denies an allowed evaluation when the table is gone', async () => {
    dropAuditTable();

    const response = await post('/access/v1/evaluation', HANDBOOK_READ);

    expect(response.statusCode).toBe(200);
    expect(response.json().decision).toBe(false);
    expect(response.json().context.reason).toBe('audit_unavailable');
    expect(response.json().context.decision_id).toEqual(expect.any(String));
  });

  it('denies every item of an evaluations call', async () => {
    dropAuditTable();

    const response = await post('/access/v1/evaluations', {
      subject: HANDBOOK_READ.subject,
      action: HANDBOOK_READ.action,
      evaluations: [
        { resource: { type: 'repo', id: 'acme/handbook' } },
        { resource: { type: 'repo', id: 'acme/secrets' } },
        { resource: { type: 'repo', id: 'acme/handbook' } },
      ],
    });

    expect(response.statusCode).toBe(200);
    const results = response.json().evaluations as { decision: boolean; context: Json }[];
    expect(results.map((result) => result.decision)).toEqual([false, false, false]);
    expect(results.map((result) => result.context.reason)).toEqual([
      'audit_unavailable',
      'audit_unavailable',
      'audit_unavailable',
    ]);
  });

  it('still rejects a bad key with 401', async () => {
    dropAuditTable();

    const response = await post('/access/v1/evaluation', HANDBOOK_READ, 'dpy_garbage');

    expect(response.statusCode).toBe(401);
  });

  it('allows again once the table is back', async () => {
    sqlite().exec('alter table audit_events rename to audit_events_moved');
    const during = await post('/access/v1/evaluation', HANDBOOK_READ);
    expect(during.json().context.reason).toBe('audit_unavailable');

    sqlite().exec('alter table audit_events_moved rename to audit_events');
    const after = await post('/access/v1/evaluation', HANDBOOK_READ);

    expect(after.json().decision).toBe(true);
    expect(after.json().context.reason).toBe('granted');
    await harness.deputy.audit.requestCheckpoint();
    const report = await verifyAudit(harness.deputy.database, harness.deputy.auditPublicKey);
    expect(report.ok).toBe(true);
    expect(report.problems).toEqual([]);
  });

  // A policy change is stored and takes effect although its audit event could not be
  // written, so the control plane changes access with no record of who changed it.
  it('stores no admin change it cannot record', async () => {
    dropAuditTable();

    const response = await harness.app.inject({
      method: 'PUT',
      url: '/admin/v1/workspaces/acme/agents/helper',
      headers: { authorization: `Bearer ${harness.keys.admin}`, 'if-match': '"1"' },
      payload: { status: 'disabled' },
    });

    expect(response.statusCode).toBeGreaterThanOrEqual(500);
    expect((await harness.deputy.revisions.list('acme')).map((item) => item.revision)).toEqual([1]);
    expect(harness.deputy.engine.revision('acme')).toBe(1);
  });
});

describe('shutdown with a broken audit log', () => {
  // Deputy.close awaits the audit log's final checkpoint before it closes the database, so a
  // failed checkpoint leaves the database handle open.
  it('closes the database when the final checkpoint fails', async () => {
    const own = await startHarness();
    try {
      await own.deputy.decide(
        [{ workspace: 'acme', agent: 'helper', action: 'repo.read', resource: 'repo:acme/api' }],
        SETUP_CALL,
      );
      dropAuditTable(own);

      await own.deputy.close().catch(() => {});

      expect(sqlite(own).open).toBe(false);
    } finally {
      await own.app.close();
      if (sqlite(own).open) sqlite(own).close();
      rmSync(own.dataDir, { recursive: true, force: true });
    }
  });
});

type Json = Record<string, unknown>;
