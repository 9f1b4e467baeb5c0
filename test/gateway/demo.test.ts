/**
 * `npm run demo` from start to end: the built demo script against its own copy of the example.
 * It prints one line per step; the test checks the outcome of each.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

describe('npm run demo', () => {
  it('plays every step', { timeout: 120_000 }, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(ROOT, 'dist/examples/acme/demo.js')],
      { cwd: ROOT, timeout: 110_000 },
    );
    const line = (label: string) => stdout.split('\n').find((entry) => entry.includes(label)) ?? '';

    expect(line('files__write_file notes.md')).toContain('ok: Successfully wrote');
    expect(stdout).toContain('Deputy denied files__write_file: no_matching_grant');
    expect(line('memory__delete_entities (guardrail)')).toContain(
      'forbidden_by_guardrail (guardrail no-memory-deletes',
    );
    expect(line('memory__search_nodes in #general')).toContain('"entities": []');
    // The warehouse needs the local PostgreSQL server; without it the demo says it skipped.
    if (!line('   warehouse ').includes('skipped')) {
      expect(line('select count(*) from orders')).toContain('ok: [ { "count": "4" } ]');
      expect(line('COMMIT; CREATE TABLE smuggled')).toContain(
        'permission denied for schema public',
      );
      expect(line('select * from finance.payroll')).toContain(
        'permission denied for schema finance',
      );
    }
    expect(line('GET /api/accounts/globex ')).toContain('200 {"id":"globex"');
    expect(line('GET /api/accounts/globex from #general')).toContain('403');
    expect(line('POST .../agents/helper/disable')).toContain('200');
    expect(line('files__read_text_file in #engineering')).toContain('invalid_token');
    expect(stdout).toMatch(/(\d+)\/\1 events valid, (\d+)\/\2 checkpoints valid/);
  });
});
