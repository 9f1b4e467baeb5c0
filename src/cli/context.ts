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

/** A quiet logger for one-shot commands: only warnings and errors, to stderr. */
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

/** Opens Deputy for a one-shot command, without the background revision refresh. */
export function openDeputy(options: StorageOptions, logger = commandLogger()): Promise<Deputy> {
  return Deputy.open({
    database: databaseOf(options),
    dataDir: dataDirOf(options),
    logger,
    refreshIntervalMs: 0,
  });
}

/** Audit actor for commands run on the server's own machine. */
export function cliCall() {
  const user = process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  return { actor: { type: 'cli' as const, id: user }, requestId: null };
}
