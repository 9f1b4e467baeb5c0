import { join } from 'node:path';

import type { Command } from 'commander';

import { buildServer } from '../api/server.js';
import { loadPolicyFile } from '../config/load.js';
import { diffPolicies } from '../engine/diff.js';
import { cliCall, commandLogger, dataDirOf, databaseOf, type StorageOptions } from './context.js';
import { Deputy } from '../deputy.js';
import { keepDisabled } from '../kill-switch.js';

interface ServeOptions extends StorageOptions {
  config: string[];
  host: string;
  port: string;
  publicUrl?: string;
  logLevel: string;
  identityTokenLifetime: string;
  gateway: boolean;
  sqliteSynchronous: string;
  allowedOrigin: string[];
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'start the HTTP API (AuthZEN, OAuth and admin) and the gateway (MCP and HTTP egress)',
    )
    .option(
      '-c, --config <file...>',
      'policy files to apply at start when they differ from the stored revision',
      [],
    )
    .option(
      '--db <location>',
      'database: SQLite path, postgres://… URL or pglite:[DIR] (default: <data-dir>/deputy.db, or DEPUTY_DATABASE_URL)',
    )
    .option(
      '--data-dir <dir>',
      'directory for the SQLite database and master key (default: ./.deputy, or DEPUTY_DATA_DIR)',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'TCP port to listen on', '7420')
    .option(
      '--public-url <url>',
      'base URL published in discovery documents (default: http://HOST:PORT)',
    )
    .option(
      '--identity-token-lifetime <seconds>',
      'lifetime of identity tokens, at most 3600',
      '600',
    )
    .option('--no-gateway', 'serve without the MCP gateway and the HTTP egress proxy')
    .option(
      '--sqlite-synchronous <mode>',
      'SQLite commit durability: full (fsync at every commit) or normal (durable against a ' +
        'crash of the process, not of the machine)',
      'full',
    )
    .option(
      '--allowed-origin <origin...>',
      'browser origins (scheme://host:port) allowed to call the MCP endpoint, besides the public URL',
      [],
    )
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug', 'info')
    .action(async (options: ServeOptions) => {
      const logger = commandLogger(options.logLevel);
      if (options.sqliteSynchronous !== 'full' && options.sqliteSynchronous !== 'normal') {
        throw new Error(
          `invalid --sqlite-synchronous ${JSON.stringify(options.sqliteSynchronous)}: use full or normal`,
        );
      }
      const deputy = await Deputy.open({
        sqliteSynchronous: options.sqliteSynchronous,
        database: databaseOf(options),
        dataDir: dataDirOf(options),
        logger,
      });

      for (const file of options.config) {
        const fromFile = await loadPolicyFile(file);
        const current = await deputy.revisions.current(fromFile.workspace.id);
        const { policy, kept } = current
          ? keepDisabled(current.policy, fromFile)
          : { policy: fromFile, kept: [] };
        if (kept.length > 0) {
          logger.warn(
            { workspace: policy.workspace.id, kept },
            'kept disabled by the kill switch although the policy file enables them; ' +
              'use deputy agents enable to enable them',
          );
        }
        if (current && diffPolicies(current.policy, policy).unchanged) continue;
        const revision = await deputy.apply(
          policy,
          current?.revision ?? 0,
          `serve --config ${file}`,
          cliCall(),
        );
        logger.info({ workspace: policy.workspace.id, revision, file }, 'policy file applied');
      }

      const port = Number(options.port);
      const publicUrl = options.publicUrl ?? `http://${options.host}:${port}`;
      const app = await buildServer({
        deputy,
        logger,
        publicUrl,
        identityTokenLifetimeSeconds: Number(options.identityTokenLifetime),
        ...(options.gateway
          ? {
              gateway: {
                compartmentDir: join(dataDirOf(options), 'compartments'),
                allowedOrigins: options.allowedOrigin,
              },
            }
          : {}),
      });
      await app.listen({ host: options.host, port });
      logger.info({ url: publicUrl, database: deputy.database.kind }, 'deputy listening');

      const stop = async (signal: string) => {
        logger.info({ signal }, 'deputy stopping');
        await app.close();
        await deputy.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    });
}
