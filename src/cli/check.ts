import type { Command } from 'commander';

import { toEvaluationResponse } from '../api/authzen/convert.js';
import { loadPolicyFile } from '../config/load.js';
import { PolicyEngine } from '../engine/engine.js';
import type { Decision, DecisionRequest } from '../engine/types.js';
import { cliCall, openDeputy, type StorageOptions } from './context.js';

interface CheckOptions extends StorageOptions {
  config?: string;
  workspace?: string;
  agent: string;
  channel?: string;
  invoker?: string;
  action: string;
  resource: string;
  json?: boolean;
}

/** Exit codes of `deputy check`. */
export const CHECK_ALLOW = 0;
export const CHECK_DENY = 1;

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('decide one request; exit 0 on allow, 1 on deny, 2 on error')
    .option(
      '-c, --config <file>',
      'decide against this policy file instead of the stored revision (nothing is recorded)',
    )
    .option(
      '--db <location>',
      'database to read the stored revision from and record the decision in',
    )
    .option('--data-dir <dir>', 'directory for the SQLite database and master key')
    .option('-w, --workspace <id>', 'workspace id (default: the only one in the file or store)')
    .requiredOption('-a, --agent <id>', 'agent id')
    .option('--channel <id>', 'channel id, or dm:<member id>; the workspace scope when omitted')
    .option('--invoker <member>', 'member who asked the agent to act')
    .requiredOption('--action <action>', 'action, for example repo.read')
    .requiredOption('--resource <resource>', 'resource as TYPE:PATH, for example repo:acme/api')
    .option('--json', 'print the whole decision as JSON')
    .action(async (options: CheckOptions) => {
      const decision = options.config ? await checkFile(options) : await checkStored(options);
      // --json prints the AuthZEN response body, the same shape as the HTTP API's.
      const output = options.json
        ? JSON.stringify(toEvaluationResponse(decision), null, 2)
        : summarize(decision);
      console.log(output);
      process.exitCode = decision.allowed ? CHECK_ALLOW : CHECK_DENY;
    });
}

function requestOf(options: CheckOptions, workspace: string): DecisionRequest {
  return {
    workspace,
    agent: options.agent,
    channel: options.channel,
    invoker: options.invoker,
    action: options.action,
    resource: options.resource,
  };
}

async function checkFile(options: CheckOptions): Promise<Decision> {
  const policy = await loadPolicyFile(options.config as string);
  const engine = new PolicyEngine();
  engine.load(policy, 0);
  return engine.decide(requestOf(options, options.workspace ?? policy.workspace.id));
}

async function checkStored(options: CheckOptions): Promise<Decision> {
  const deputy = await openDeputy(options);
  try {
    const ids = deputy.engine.workspaceIds();
    const workspace = options.workspace ?? (ids.length === 1 ? ids[0] : undefined);
    if (workspace === undefined) {
      throw new Error(
        `pass --workspace: the store holds ${ids.length === 0 ? 'no workspace' : ids.join(', ')}`,
      );
    }
    const [decision] = await deputy.decide([requestOf(options, workspace)], cliCall());
    return decision!;
  } finally {
    await deputy.close();
  }
}

function summarize(decision: Decision): string {
  const verdict = decision.allowed ? 'allow' : 'deny';
  const parts = [`${verdict} (${decision.reason})`];
  if (decision.identity) parts.push(`identity=${decision.identity}`);
  if (decision.attachment) parts.push(`attachment=${decision.attachment}`);
  if (decision.grant) parts.push(`grant=${decision.grant}`);
  if (decision.connection) parts.push(`connection=${decision.connection}`);
  if (decision.guardrail) parts.push(`guardrail=${decision.guardrail}`);
  if (decision.detail) parts.push(`detail=${decision.detail}`);
  return parts.join(' ');
}
