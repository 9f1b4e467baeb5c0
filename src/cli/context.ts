import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';

import pino, { type Logger } from 'pino';

import { Deputy } from '../deputy.js';

/** Options every command that touches storage accepts. */
export interface StorageOptions {
  db?: string;
  dataDir?: string;
}

export function dataDirOf(options: StorageOptions): string {
  return resolve(options.dataDir ?? process.env.DEPUTY_DATA_DIR ?? '.deputy');
}

/** Database location: `--db`, then DEPUTY_DATABASE_URL, then SQLite under the data directory. */
export function databaseOf(options: StorageOptions): string {
  return options.db ?? process.env.DEPUTY_DATABASE_URL ?? join(dataDirOf(options), 'deputy.db');
}

/** Creates a quiet logger for one-shot commands: only warnings and errors, to stderr. */
export function commandLogger(level = 'warn'): Logger {
  return pino(
    {
      level,
      redact: {
        paths: ['*.authorization', '*.password', '*.secret', '*.key', '*.token', 'req.headers'],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  );
}

/**
 * Opens Deputy for a one-shot command, without the background revision refresh. Unless
 * `create` is set, a missing SQLite database is an error: a command run from the wrong
 * directory must not quietly start an empty store.
 */
export async function openDeputy(
  options: StorageOptions,
  { create = false }: { create?: boolean } = {},
  logger = commandLogger(),
): Promise<Deputy> {
  const database = databaseOf(options);
  const isSqliteFile = !/^(postgres(ql)?:\/\/|pglite:)/.test(database) && database !== ':memory:';
  if (!create && isSqliteFile && !existsSync(database.replace(/^sqlite:/, ''))) {
    throw new Error(
      `no Deputy database at ${database}: pass --data-dir or --db, or set DEPUTY_DATA_DIR ` +
        'or DEPUTY_DATABASE_URL (deputy serve or deputy apply creates one)',
    );
  }
  return await Deputy.open({
    database,
    dataDir: dataDirOf(options),
    logger,
    refreshIntervalMs: 0,
  });
}

/** Audit actor for commands run on the server's own machine. */
export function cliCall() {
  const user = process.env.USER ?? process.env.LOGNAME ?? userInfoName();
  return { actor: { type: 'cli' as const, id: user }, requestId: null };
}

function userInfoName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
