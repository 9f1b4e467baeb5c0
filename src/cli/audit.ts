import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';

import type { Command } from 'commander';

import { exportAudit } from '../audit/export.js';
import { formatVerifyReport, verifyAudit } from '../audit/verify.js';
import { importPublicKeyPem } from '../keys/audit-signing-key.js';
import { openDatabase } from '../storage/database.js';
import { databaseOf, openDeputy, type StorageOptions } from './context.js';

interface VerifyOptions extends StorageOptions {
  publicKey?: string;
  json?: boolean;
  maxCheckpointGap: string;
}

interface ExportOptions extends StorageOptions {
  format: 'jsonl' | 'ocsf';
  workspace?: string;
  output?: string;
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('verify and export the audit log');

  audit
    .command('verify')
    .description('check the hash chain and signed checkpoints; exit 1 when anything is wrong')
    .option('--db <location>', 'database holding the audit log')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .option(
      '--public-key <file>',
      'PEM public key to check checkpoints with (default: derived from the master key)',
    )
    .option('--json', 'print the report as JSON')
    .option(
      '--max-checkpoint-gap <events>',
      'most events allowed without a checkpoint; more means checkpoints were deleted',
      '6096',
    )
    .action(async (options: VerifyOptions) => {
      const { publicKey, close, database } = await openForVerify(options);
      try {
        const report = await verifyAudit(database, publicKey, {
          maxCheckpointGap: Number(options.maxCheckpointGap),
        });
        console.log(options.json ? JSON.stringify(report, null, 2) : formatVerifyReport(report));
        process.exitCode = report.ok ? 0 : 1;
      } finally {
        await close();
      }
    });

  audit
    .command('export')
    .description('write audit events as JSON Lines')
    .option('--db <location>', 'database holding the audit log')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .option(
      '--format <format>',
      'jsonl (events with their hashes) or ocsf (OCSF-shaped events)',
      'jsonl',
    )
    .option('-w, --workspace <id>', 'only events of this workspace')
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .action(async (options: ExportOptions) => {
      if (options.format !== 'jsonl' && options.format !== 'ocsf') {
        throw new Error(`invalid --format ${String(options.format)}: use jsonl or ocsf`);
      }
      const database = await openDatabase(databaseOf(options));
      const out = options.output ? createWriteStream(options.output) : process.stdout;
      // A reader that stops early (export | head) ends the export quietly.
      out.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPIPE') throw error;
      });
      try {
        const lines = exportAudit(database, {
          format: options.format,
          ...(options.workspace ? { workspace: options.workspace } : {}),
        });
        for await (const line of lines) {
          if (!out.write(`${line}\n`)) await once(out, 'drain');
        }
      } finally {
        if (out !== process.stdout) out.end();
        await database.close();
      }
    });
}

async function openForVerify(options: VerifyOptions) {
  if (options.publicKey) {
    const publicKey = importPublicKeyPem(
      await readFile(options.publicKey, 'utf8'),
      options.publicKey,
    );
    const database = await openDatabase(databaseOf(options));
    return { publicKey, database, close: () => database.close() };
  }
  const deputy = await openDeputy(options);
  return {
    publicKey: deputy.auditPublicKey,
    database: deputy.database,
    close: () => deputy.close(),
  };
}
