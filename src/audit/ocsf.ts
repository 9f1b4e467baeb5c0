import type { StoredAuditEvent } from './event.js';

/** OCSF schema version the mapping follows. */
export const OCSF_VERSION = '1.5.0';

const API_ACTIVITY_CLASS_UID = 6003;
const APPLICATION_ACTIVITY_CATEGORY_UID = 6;

/** API Activity activity_id values by the last word of an audit event type. */
const ACTIVITY_IDS: Readonly<Record<string, { id: number; name: string }>> = {
  create: { id: 1, name: 'Create' },
  add: { id: 1, name: 'Create' },
  read: { id: 2, name: 'Read' },
  get: { id: 2, name: 'Read' },
  list: { id: 2, name: 'Read' },
  update: { id: 3, name: 'Update' },
  change: { id: 3, name: 'Update' },
  set: { id: 3, name: 'Update' },
  apply: { id: 3, name: 'Update' },
  rotate: { id: 3, name: 'Update' },
  delete: { id: 4, name: 'Delete' },
  remove: { id: 4, name: 'Delete' },
  revoke: { id: 4, name: 'Delete' },
};

/** OCSF User type_id by actor type: 1 User, 2 Admin, 3 System, 99 Other. */
const USER_TYPE_IDS: Readonly<Record<string, number>> = {
  member: 1,
  cli: 2,
  system: 3,
  agent: 99,
  api_key: 99,
};

/**
 * Maps an audit event to an OCSF 1.5.0 API Activity event (class_uid 6003, category_uid 6).
 *
 * - `activity_id` comes from the type's last word: create 1, read 2, update/set/apply 3,
 *   delete/revoke 4. Other types (`decision`, `auth.failure`) get 99 Other, with the type as
 *   `activity_name`.
 * - `status_id` is 2 Failure for a deny or a type ending in `.failure`, else 1 Success. The
 *   reason becomes `status_detail`.
 * - `actor.user` comes from the actor, and `actor.authorizations` from the decision.
 * - `api.operation` is the action, or the type when there is none. `api.request.uid` is the
 *   request_id.
 * - `resources` lists the resource and the connection.
 * - `metadata.uid` is the seq as a string, `metadata.tenant_uid` the workspace and
 *   `metadata.correlation_uid` the request_id.
 * - `unmapped` contains the fields without an OCSF attribute, plus seq, type, workspace and
 *   decision under their audit names, and the chain's prev and hash.
 *
 * NOTE: the audit log records no network endpoint, so `src_endpoint`, which API Activity
 * requires, is absent. The ids above come from published OCSF 1.x schema pages, and no OCSF
 * validator has checked this output.
 */
export function toOcsf(event: StoredAuditEvent): Record<string, unknown> {
  const activity = activityOf(event.type);
  const failed = event.decision === 'deny' || event.type.endsWith('.failure');

  return {
    class_uid: API_ACTIVITY_CLASS_UID,
    class_name: 'API Activity',
    category_uid: APPLICATION_ACTIVITY_CATEGORY_UID,
    category_name: 'Application Activity',
    activity_id: activity.id,
    activity_name: activity.name,
    type_uid: API_ACTIVITY_CLASS_UID * 100 + activity.id,
    time: Date.parse(event.time),
    severity_id: 1,
    severity: 'Informational',
    status_id: failed ? 2 : 1,
    status: failed ? 'Failure' : 'Success',
    ...(event.reason !== null ? { status_detail: event.reason } : {}),
    actor: actorOf(event),
    api: {
      operation: event.action ?? event.type,
      ...(event.request_id !== null ? { request: { uid: event.request_id } } : {}),
    },
    resources: resourcesOf(event),
    metadata: metadataOf(event),
    unmapped: unmappedOf(event),
  };
}

function activityOf(type: string): { id: number; name: string } {
  const lastWord = type.slice(type.lastIndexOf('.') + 1);
  return ACTIVITY_IDS[lastWord] ?? { id: 99, name: type };
}

function actorOf(event: StoredAuditEvent): Record<string, unknown> {
  const user = {
    uid: event.actor.id,
    type: event.actor.type,
    type_id: USER_TYPE_IDS[event.actor.type] ?? 99,
  };
  if (event.decision === null) {
    return { user };
  }
  const decision = event.decision === 'allow' ? 'allowed' : 'denied';
  return { user, authorizations: [{ decision }] };
}

function resourcesOf(event: StoredAuditEvent): Array<Record<string, string>> {
  const resources: Array<Record<string, string>> = [];
  if (event.resource !== null) {
    resources.push({ uid: event.resource, type: 'resource' });
  }
  if (event.connection !== null) {
    resources.push({ uid: event.connection, type: 'connection' });
  }
  return resources;
}

function metadataOf(event: StoredAuditEvent): Record<string, unknown> {
  return {
    version: OCSF_VERSION,
    product: { name: 'Deputy', vendor_name: 'Deputy' },
    uid: String(event.seq),
    event_code: event.type,
    original_time: event.time,
    ...(event.workspace !== null ? { tenant_uid: event.workspace } : {}),
    ...(event.request_id !== null ? { correlation_uid: event.request_id } : {}),
  };
}

function unmappedOf(event: StoredAuditEvent): Record<string, unknown> {
  const unmapped: Record<string, unknown> = {
    seq: event.seq,
    type: event.type,
    workspace: event.workspace,
    identity: event.identity,
    invoker: event.invoker,
    scope: event.scope,
    decision: event.decision,
    bundle: event.bundle,
    grant: event.grant,
    revision: event.revision,
    decision_id: event.decision_id,
    detail: event.detail,
    prev: event.prev,
    hash: event.hash,
  };
  // OCSF omits absent attributes rather than setting them to null.
  return Object.fromEntries(Object.entries(unmapped).filter(([, value]) => value !== null));
}
