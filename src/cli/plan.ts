import type { Command } from 'commander';

import { loadPolicyFile } from '../config/load.js';
import { diffPolicies, formatDiff } from '../engine/diff.js';
import { cliCall, openDeputy, type StorageOptions } from './context.js';

interface PlanOptions extends StorageOptions {
  config: string;
  json?: boolean;
  expectRevision?: string;
}

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('show what applying a policy file would change, and who gains or loses access')
    .requiredOption('-c, --config <file>', 'policy file')
    .option('--db <location>', 'database holding the current revision')
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .option('--json', 'print the plan as JSON')
    .action(async (options: PlanOptions) => {
      const policy = await loadPolicyFile(options.config);
      const deputy = await openDeputy(options);
      try {
        const current = await deputy.revisions.current(policy.workspace.id);
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
    .action(async (options: PlanOptions) => {
      const policy = await loadPolicyFile(options.config);
      const deputy = await openDeputy(options);
      try {
        const current = await deputy.revisions.current(policy.workspace.id);
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
