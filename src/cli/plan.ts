import type { Command } from 'commander';

import { loadPolicyFile } from '../config/load.js';
import { diffPolicies, formatDiff } from '../engine/diff.js';
import { keepDisabled } from '../kill-switch.js';
import type { Policy } from '../model/policy.js';
import { cliCall, openDeputy, type StorageOptions } from './context.js';

interface PlanOptions extends StorageOptions {
  config: string;
  json?: boolean;
  expectRevision?: string;
  allowEnable?: boolean;
}

/**
 * Reads a policy file and, unless `allowEnable`, keeps agents and identities that the kill
 * switch disabled in the store disabled. Prints what was kept.
 */
async function loadForStore(options: PlanOptions, current: Policy | null): Promise<Policy> {
  const fromFile = await loadPolicyFile(options.config);
  if (current === null || options.allowEnable) return fromFile;
  const { policy, kept } = keepDisabled(current, fromFile);
  if (kept.length > 0) {
    console.log(
      `kept disabled by the kill switch: ${kept.join(', ')} ` +
        '(pass --allow-enable, or run deputy agents enable)',
    );
  }
  return policy;
}

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('show what applying a policy file would change, and who gains or loses access')
    .requiredOption('-c, --config <file>', 'policy file')
    .option('--db <location>', 'database holding the current revision')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .option('--json', 'print the plan as JSON')
    .option('--allow-enable', 'let the file enable agents and identities the kill switch disabled')
    .action(async (options: PlanOptions) => {
      const workspaceId = (await loadPolicyFile(options.config)).workspace.id;
      const deputy = await openDeputy(options, { create: true });
      try {
        const current = await deputy.revisions.current(workspaceId);
        const policy = await loadForStore(options, current?.policy ?? null);
        const diff = diffPolicies(current?.policy ?? null, policy);
        const base = current ? `revision ${current.revision}` : 'a new workspace';
        console.log(
          options.json
            ? JSON.stringify({ base: current?.revision ?? 0, ...diff }, null, 2)
            : `against ${base}\n${formatDiff(diff)}`,
        );
      } finally {
        await deputy.close();
      }
    });

  program
    .command('apply')
    .description('store a policy file as the next revision of its workspace, atomically')
    .requiredOption('-c, --config <file>', 'policy file')
    .option('--db <location>', 'database to apply to')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .option(
      '--expect-revision <n>',
      'fail unless the workspace is at this revision (what plan showed)',
    )
    .option('--allow-enable', 'let the file enable agents and identities the kill switch disabled')
    .action(async (options: PlanOptions) => {
      const workspaceId = (await loadPolicyFile(options.config)).workspace.id;
      const deputy = await openDeputy(options, { create: true });
      try {
        const current = await deputy.revisions.current(workspaceId);
        const policy = await loadForStore(options, current?.policy ?? null);
        const diff = diffPolicies(current?.policy ?? null, policy);
        if (diff.unchanged) {
          console.log(
            `workspace ${policy.workspace.id} is already at revision ${current?.revision}: no changes`,
          );
          return;
        }
        const expected =
          options.expectRevision === undefined
            ? (current?.revision ?? 0)
            : Number(options.expectRevision);
        const revision = await deputy.apply(policy, expected, `apply ${options.config}`, cliCall());
        console.log(`${formatDiff(diff)}\napplied as revision ${revision}`);
      } finally {
        await deputy.close();
      }
    });
}
