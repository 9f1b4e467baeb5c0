import type { AuditRecordInput } from '../../src/audit/event.js';

/** Builds a decision record. `n` varies the fields, so every event gets its own body. */
export function decisionRecord(n: number, workspace = 'acme'): AuditRecordInput {
  return {
    type: 'decision',
    workspace,
    actor: { type: 'agent', id: `agent-${n % 7}` },
    identity: 'alice',
    invoker: 'bob',
    scope: `channel:C${n % 3}`,
    action: 'slack:chat.postMessage',
    resource: `channel:C${n % 3}`,
    decision: n % 5 === 0 ? 'deny' : 'allow',
    reason: n % 5 === 0 ? 'no_grant' : 'granted',
    bundle: 'slack-basic',
    grant: 'post',
    connection: 'slack',
    revision: 3,
    decision_id: `d_${n}`,
    request_id: `r_${n}`,
    detail: { n, note: 'ünïcödé \u0001 "quoted"' },
  };
}
