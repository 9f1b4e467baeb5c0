import { readFile } from 'node:fs/promises';

import type { Connection } from '../model/policy.js';
import type { SecretStore } from '../storage/secrets.js';

/** Raised when a connection's secret reference cannot be resolved. Never contains the secret. */
export class CredentialError extends Error {
  readonly code = 'ERR_CREDENTIAL_UNAVAILABLE';

  constructor(message: string) {
    super(message);
    this.name = 'CredentialError';
  }
}

/**
 * Resolves a connection's secret reference (`env:NAME`, `file:PATH` or `stored`) to the secret.
 * Returns `null` when the connection has no credential.
 */
export async function resolveCredential(
  workspace: string,
  connection: Connection,
  secrets: SecretStore,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<string | null> {
  const reference = connection.credential?.secret;
  if (reference === undefined) return null;

  if (reference.startsWith('env:')) {
    const name = reference.slice(4);
    const value = env[name];
    if (value === undefined || value === '') {
      throw new CredentialError(
        `connection ${connection.id}: environment variable ${name} is not set`,
      );
    }
    return value;
  }
  if (reference.startsWith('file:')) {
    const path = reference.slice(5);
    try {
      return (await readFile(path, 'utf8')).trim();
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new CredentialError(`connection ${connection.id}: cannot read ${path} (${reason})`);
    }
  }
  const stored = await secrets.reveal(workspace, connection.id);
  if (stored === null) {
    throw new CredentialError(
      `connection ${connection.id}: no secret stored; set it with PUT ` +
        `/admin/v1/workspaces/${workspace}/connections/${connection.id}/secret`,
    );
  }
  return stored;
}
