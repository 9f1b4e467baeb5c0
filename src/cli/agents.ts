import { readFile } from 'node:fs/promises';

import type { Command } from 'commander';
import type { JSONWebKeySet } from 'jose';

import { disable, enable } from '../kill-switch.js';
import { CLIENT_AUTH_METHODS, type ClientAuthMethod } from '../oauth/clients.js';
import { cliCall, openDeputy, type StorageOptions } from './context.js';

interface SwitchOptions extends StorageOptions {
  workspace: string;
  identity?: string;
}

interface ClientOptions extends StorageOptions {
  workspace: string;
  authMethod: ClientAuthMethod;
  jwks?: string;
  label?: string;
}

export function registerAgents(program: Command): void {
  const agents = program
    .command('agents')
    .description('the kill switch and runtime clients of agents');

  for (const verb of ['disable', 'enable'] as const) {
    agents
      .command(`${verb} <agent>`)
      .description(
        verb === 'disable'
          ? 'disable an agent or one identity: stop issuance and decisions and revoke its tokens'
          : 'enable an agent or identity again; tokens issued before the disable stay revoked',
      )
      .requiredOption('-w, --workspace <id>', 'workspace id')
      .option(
        '--identity <identity>',
        'one identity: agent:<id>/channel:<channel> or member:<member>',
      )
      .option('--db <location>', 'database')
      .option('--data-dir <dir>', 'directory for the SQLite database and master key')
      .action(async (agent: string, options: SwitchOptions) => {
        const deputy = await openDeputy(options);
        try {
          const target = { workspace: options.workspace, agent, identity: options.identity };
          const result =
            verb === 'disable'
              ? await disable(deputy, target, cliCall())
              : await enable(deputy, target, cliCall());
          const subject = options.identity ?? `agent ${agent}`;
          console.log(`${verb}d ${subject} in revision ${result.revision}`);
        } finally {
          await deputy.close();
        }
      });
  }

  agents
    .command('client <agent>')
    .description('register a runtime client for an agent and print its id (and secret, once)')
    .requiredOption('-w, --workspace <id>', 'workspace id')
    .option(
      '--auth-method <method>',
      `one of ${CLIENT_AUTH_METHODS.join(', ')}`,
      'client_secret_basic',
    )
    .option('--jwks <file>', 'JSON file with the public JWK set, for private_key_jwt')
    .option('--label <text>', 'a note on which runtime uses the client')
    .option('--db <location>', 'database')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .action(async (agent: string, options: ClientOptions) => {
      if (!CLIENT_AUTH_METHODS.includes(options.authMethod)) {
        throw new Error(
          `invalid --auth-method ${options.authMethod}: use one of ${CLIENT_AUTH_METHODS.join(', ')}`,
        );
      }
      const jwks = options.jwks
        ? (JSON.parse(await readFile(options.jwks, 'utf8')) as JSONWebKeySet)
        : undefined;
      const deputy = await openDeputy(options);
      try {
        if (!deputy.engine.workspace(options.workspace)?.agents.has(agent)) {
          throw new Error(`agent ${agent} not found in workspace ${options.workspace}`);
        }
        const created = await deputy.createClient(
          {
            workspace: options.workspace,
            agent,
            authMethod: options.authMethod,
            jwks,
            label: options.label,
          },
          cliCall(),
        );
        console.log(`client_id=${created.client.clientId}`);
        if (created.secret !== null) console.log(`client_secret=${created.secret}`);
      } finally {
        await deputy.close();
      }
    });
}
