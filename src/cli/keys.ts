import type { Command } from 'commander';

import { exportPublicKeyPem } from '../keys/audit-signing-key.js';
import { ROLES, type Role } from '../storage/api-keys.js';
import { cliCall, openDeputy, type StorageOptions } from './context.js';

interface CreateOptions extends StorageOptions {
  role: Role;
  label: string;
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('manage API keys, rotate the token signing key, show the audit public key');

  keys
    .command('create')
    .description('create an API key and print it once; only its hash is stored')
    .requiredOption('--role <role>', `what the key may do: ${ROLES.join(', ')}`)
    .option('--label <text>', 'a note on who or what uses the key', '')
    .option('--db <location>', 'database to store the key in')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .action(async (options: CreateOptions) => {
      if (!ROLES.includes(options.role)) {
        throw new Error(`invalid --role ${options.role}: use one of ${ROLES.join(', ')}`);
      }
      const deputy = await openDeputy(options, { create: true });
      try {
        const created = await deputy.createKey(options.role, options.label, cliCall());
        console.log(created.key);
      } finally {
        await deputy.close();
      }
    });

  keys
    .command('list')
    .description('list API keys (ids, roles and labels; never the keys)')
    .option('--db <location>', 'database holding the keys')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .action(async (options: StorageOptions) => {
      const deputy = await openDeputy(options);
      try {
        for (const key of await deputy.keys.list()) {
          const state = key.revokedAt ? `revoked ${key.revokedAt}` : 'active';
          console.log(`${key.id}  ${key.role.padEnd(7)}  ${state}  ${key.label}`);
        }
      } finally {
        await deputy.close();
      }
    });

  keys
    .command('revoke <id>')
    .description('revoke an API key by id')
    .option('--db <location>', 'database holding the keys')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .action(async (id: string, options: StorageOptions) => {
      const deputy = await openDeputy(options);
      try {
        if (!(await deputy.revokeKey(id, cliCall())))
          throw new Error(`active API key ${id} not found`);
        console.log(`revoked ${id}`);
      } finally {
        await deputy.close();
      }
    });

  keys
    .command('rotate')
    .description(
      'start signing tokens with a new key; the old one stays published until its tokens expire',
    )
    .option('--db <location>', 'database')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .action(async (options: StorageOptions) => {
      const deputy = await openDeputy(options);
      try {
        const previous = await deputy.signingKeys.current();
        const current = await deputy.signingKeys.rotate();
        await deputy.audit.append({
          type: 'signing_key.rotate',
          actor: cliCall().actor,
          detail: { previous_kid: previous.kid, kid: current.kid },
        });
        console.log(`signing key ${current.kid} is current; ${previous.kid} is retired`);
      } finally {
        await deputy.close();
      }
    });

  keys
    .command('audit-public-key')
    .description('print the PEM public key that verifies audit checkpoints')
    .option('--db <location>', 'database')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .action(async (options: StorageOptions) => {
      const deputy = await openDeputy(options);
      try {
        process.stdout.write(exportPublicKeyPem(deputy.auditPublicKey));
      } finally {
        await deputy.close();
      }
    });
}
