/**
 * An unauthenticated caller flooding the API with bad keys. Each failure is audited, up to a
 * per-second limit, so the flood cannot fill the audit log, and the key id in the header is
 * recorded only as claimed, so a caller cannot write events in another key's name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { StoredAuditEvent } from '../../src/audit/event.js';
import { auditEventsAfter, type Harness, lastAuditSeq, startHarness } from '../api/harness.js';
import { waitPastSecond } from '../oauth/harness.js';

const FLOOD = 100;
const RECORDED_PER_SECOND = 20;

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness({ policy: null });
});

afterAll(async () => {
  await harness.close();
});

/** Builds a well-formed key with the admin key's id and a wrong secret. */
function forgedAdminKey(): string {
  return `dpy_${harness.keyIds.admin}_${'A'.repeat(43)}`;
}

async function listWorkspaces(authorization?: string) {
  return await harness.app.inject({
    method: 'GET',
    url: '/admin/v1/workspaces',
    headers: authorization === undefined ? {} : { authorization },
  });
}

function failures(events: StoredAuditEvent[]): StoredAuditEvent[] {
  return events.filter((event) => event.type === 'auth.failure');
}

describe('bad key flood', () => {
  it('records at most 20 failures a second', async () => {
    const after = await lastAuditSeq(harness.deputy);
    // Start at the beginning of a second, so the whole flood falls into one.
    await waitPastSecond(Math.floor(Date.now() / 1000));
    const floodSecond = Math.floor(Date.now() / 1000);

    const responses = await Promise.all(
      Array.from({ length: FLOOD }, () => listWorkspaces(`Bearer ${forgedAdminKey()}`)),
    );
    const endSecond = Math.floor(Date.now() / 1000);
    const flood = failures(await auditEventsAfter(harness.deputy, after));

    expect(endSecond).toBe(floodSecond);
    expect(responses.map((response) => response.statusCode)).toEqual(Array(FLOOD).fill(401));
    expect(flood).toHaveLength(RECORDED_PER_SECOND);
    for (const event of flood) {
      expect(event.detail).toEqual({
        problem: 'invalid',
        method: 'GET',
        route: '/admin/v1/workspaces',
        claimed_key_id: harness.keyIds.admin,
      });
    }

    // The next failure after the second rolls over carries the count of the suppressed ones.
    await waitPastSecond(floodSecond);
    const next = await listWorkspaces();
    const all = failures(await auditEventsAfter(harness.deputy, after));

    expect(next.statusCode).toBe(401);
    expect(all).toHaveLength(RECORDED_PER_SECOND + 1);
    expect(all.at(-1)!.detail).toEqual({
      problem: 'missing',
      method: 'GET',
      route: '/admin/v1/workspaces',
      claimed_key_id: null,
      suppressed_since_last: FLOOD - RECORDED_PER_SECOND,
    });
  });

  it('never records the claimed key as actor', async () => {
    const after = await lastAuditSeq(harness.deputy);
    await waitPastSecond(Math.floor(Date.now() / 1000));
    const headers = [
      `Bearer ${forgedAdminKey()}`,
      `bearer ${forgedAdminKey()}`,
      `Bearer dpy_${harness.keyIds.pep}_${'B'.repeat(43)}`,
      `Bearer dpy_${harness.keyIds.auditor}_short`,
      'Bearer dpy_0123456789abcdef_' + 'C'.repeat(43),
    ];

    for (const header of headers) {
      expect((await listWorkspaces(header)).statusCode).toBe(401);
    }
    const events = await auditEventsAfter(harness.deputy, after);
    const recorded = failures(events);

    expect(recorded.map((event) => event.actor)).toEqual(
      headers.map(() => ({ type: 'api_key', id: 'anonymous' })),
    );
    expect(recorded.map((event) => event.detail?.claimed_key_id)).toEqual([
      harness.keyIds.admin,
      harness.keyIds.admin,
      harness.keyIds.pep,
      harness.keyIds.auditor,
      '0123456789abcdef',
    ]);
    const keyIds = Object.values(harness.keyIds);
    for (const event of events) {
      expect(keyIds).not.toContain(event.actor.id);
    }
  });

  it('still admits the real key', async () => {
    await waitPastSecond(Math.floor(Date.now() / 1000));
    await Promise.all(
      Array.from({ length: FLOOD }, () => listWorkspaces(`Bearer ${forgedAdminKey()}`)),
    );

    const response = await listWorkspaces(`Bearer ${harness.keys.admin}`);

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ workspaces: [] });
  });
});
