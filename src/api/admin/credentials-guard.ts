import type { Deputy, CallContext } from '../../deputy.js';
import type { Connection, Policy } from '../../model/policy.js';
import { badRequest } from '../errors.js';

const isHostReference = (secret: string | undefined) =>
  secret !== undefined && (secret.startsWith('env:') || secret.startsWith('file:'));

const destination = (connection: Connection) =>
  JSON.stringify([connection.url ?? null, connection.hosts, connection.credential ?? null]);

/**
 * Rejects API edits that would let a network caller read the host's environment or files: an
 * `env:` or `file:` credential, or where such a credential is sent (url, hosts, scheme), may
 * only come from a policy file applied on the host. Through the API, use `stored` secrets.
 */
export function checkCredentialEdits(current: Policy | null, next: Policy): void {
  for (const connection of next.connections) {
    const secret = connection.credential?.secret;
    if (!isHostReference(secret)) continue;
    const before = current?.connections.find((entry) => entry.id === connection.id);
    if (before && destination(before) === destination(connection)) continue;
    throw badRequest(
      `connection ${connection.id}: env: and file: credentials, and where they are sent, can ` +
        'only be changed in a policy file applied with deputy apply; use stored through the API',
    );
  }
}

/**
 * Deletes stored secrets whose connection was removed or now sends its credential somewhere
 * else (another url, hosts or scheme), so a secret never follows a connection to a new place.
 */
export async function dropMovedSecrets(
  deputy: Deputy,
  current: Policy,
  next: Policy,
  call: CallContext,
): Promise<void> {
  for (const before of current.connections) {
    if (before.credential?.secret !== 'stored') continue;
    const after = next.connections.find((entry) => entry.id === before.id);
    if (
      after &&
      after.credential?.secret === 'stored' &&
      destination(after) === destination(before)
    ) {
      continue;
    }
    const workspace = current.workspace.id;
    await deputy.audit.append({
      type: 'secret.delete',
      workspace,
      actor: call.actor,
      connection: before.id,
      request_id: call.requestId,
      detail: { reason: after ? 'connection destination changed' : 'connection removed' },
    });
    await deputy.secrets.delete(workspace, before.id);
  }
}
