/**
 * The MCP conformance server suite, against server-everything directly and through the
 * gateway. Each run compares its failures with a checked-in baseline; the gateway's baseline
 * may only list failures the upstream has on its own. Both scripts use the built dist/.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

async function run(script: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [join(ROOT, 'conformance', script)], { cwd: ROOT });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('MCP conformance', () => {
  it('upstream matches its baseline', { timeout: 120_000 }, async () => {
    const { code, output } = await run('run.mjs');
    expect(output).not.toContain('UNEXPECTED FAILURE');
    expect(code).toBe(0);
  });

  it('gateway adds no failure', { timeout: 120_000 }, async () => {
    const { code, output } = await run('gateway.mjs');
    expect(output).not.toContain('UNEXPECTED FAILURE');
    expect(output).not.toContain('STALE');
    expect(code).toBe(0);
  });
});
