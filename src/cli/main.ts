import { Command, CommanderError } from 'commander';

import { ConfigError } from '../config/load.js';
import { registerAgents } from './agents.js';
import { registerAudit } from './audit.js';
import { registerCheck } from './check.js';
import { registerKeys } from './keys.js';
import { registerPlan } from './plan.js';
import { registerServe } from './serve.js';

/** Exit code for errors (bad input, unreachable database); `check` uses 0 and 1 for decisions. */
export const EXIT_ERROR = 2;

/** Runs the `deputy` command line and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('deputy')
    .description('Deputy: identity, access and audit control plane for AI agents')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();
  registerServe(program);
  registerCheck(program);
  registerPlan(program);
  registerAudit(program);
  registerKeys(program);
  registerAgents(program);

  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : EXIT_ERROR;
    }
    console.error(
      error instanceof ConfigError ? error.message : `deputy: ${(error as Error).message}`,
    );
    return EXIT_ERROR;
  }
}
