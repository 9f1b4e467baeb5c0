/**
 * The `deputy` command line, run as a child process from the built `dist/` (build first with
 * `npx tsc -p .`), each test with its own temporary data directory.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it, type TestContext } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'deputy.js');
const ACME = 'examples/acme/deputy.yaml';
const ACME_TEXT = readFileSync(join(ROOT, ACME), 'utf8');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `deputy` from the repository root. The environment carries no DEPUTY_* variables, so
 * the master key and database come from the data directory only.
 */
function deputy(...args: string[]): Promise<Result> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, USER: 'cli-tester' };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Replaces `search` in the example's text, failing when it does not occur exactly once. */
function acmeEdited(edits: [search: string, replacement: string][]): string {
  let text = ACME_TEXT;
  for (const [search, replacement] of edits) {
    expect(text.split(search)).toHaveLength(2);
    text = text.replace(search, replacement);
  }
  return text;
}

/** 1-based line of the first line of `text` that equals `line`. */
function lineOf(text: string, line: string): number {
  const index = text.split('\n').indexOf(line);
  expect(index).toBeGreaterThanOrEqual(0);
  return index + 1;
}

/** Creates a temporary data directory that is removed when the test finishes. */
function tempDir(context: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'deputy-cli-'));
  context.onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const HANDBOOK = ['-a', 'helper', '--action', 'repo.read', '--resource', 'repo:acme/handbook'];
const SECRETS = ['-a', 'helper', '--action', 'repo.read', '--resource', 'repo:acme/secrets'];

describe('check', () => {
  it('exits 0 on allow', async () => {
    const result = await deputy('check', '--config', ACME, ...HANDBOOK);

    expect(result.stdout).toBe(
      'allow (granted) identity=agent:helper attachment=workspace/baseline ' +
        'grant=read-handbook connection=github\n',
    );
    expect(result.code).toBe(0);
  });

  it('exits 1 on deny', async () => {
    const result = await deputy('check', '--config', ACME, ...SECRETS);

    expect(result.stdout).toBe(
      'deny (forbidden_by_guardrail) identity=agent:helper guardrail=no-secrets-repo\n',
    );
    expect(result.code).toBe(1);
  });

  it('decides in a channel for an invoker', async () => {
    const result = await deputy(
      'check',
      '--config',
      ACME,
      '-a',
      'helper',
      '--channel',
      'C02ENG',
      '--invoker',
      'U03CAROL',
      '--action',
      'repo.read',
      '--resource',
      'repo:acme/api',
    );

    expect(result.stdout).toBe('deny (invoker_not_permitted) identity=agent:helper\n');
    expect(result.code).toBe(1);
  });

  it('prints the whole decision with --json', async () => {
    const result = await deputy('check', '--config', ACME, '--json', ...HANDBOOK);

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      decision: true,
      context: {
        reason: 'granted',
        detail: null,
        decision_id: expect.any(String),
        revision: 0,
        workspace: 'acme',
        scope: 'workspace',
        identity: 'agent:helper',
        invoker: null,
        bundle: 'baseline',
        attachment: 'workspace/baseline',
        grant: 'read-handbook',
        connection: 'github',
        guardrail: null,
      },
    });
  });

  it('prints a deny as JSON with exit 1', async () => {
    const result = await deputy('check', '--config', ACME, '--json', ...SECRETS);

    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({
      decision: false,
      context: { reason: 'forbidden_by_guardrail', guardrail: 'no-secrets-repo' },
    });
  });

  it('exits 2 without a required option', async () => {
    const result = await deputy('check', '--config', ACME, '--action', 'repo.read');

    expect(result.code).toBe(2);
    expect(result.stderr).toContain("required option '-a, --agent <id>' not specified");
    expect(result.stdout).toBe('');
  });

  it('exits 2 on a missing config file', async (context) => {
    const dir = tempDir(context);
    const missing = join(dir, 'nope.yaml');

    const result = await deputy('check', '--config', missing, ...HANDBOOK);

    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`${missing}:1:1: (file): cannot read the file (ENOENT)\n`);
  });

  it('reports a bad config at file:line:column with the fix', async (context) => {
    const dir = tempDir(context);
    const text = acmeEdited([['    status: active\n', '    statuss: active\n']]);
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, text);

    const result = await deputy('check', '--config', file, ...HANDBOOK);

    expect(result.code).toBe(2);
    const line = lineOf(text, '    statuss: active');
    expect(result.stderr).toBe(
      `${file}:${line}:5: agents[0].statuss: unknown key statuss ` +
        '(fix: remove it or check its spelling against the configuration reference)\n',
    );
  });

  it('reports a YAML syntax error at its position', async (context) => {
    const dir = tempDir(context);
    const text = acmeEdited([['  id: acme\n', '  id: [acme\n']]);
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, text);

    const result = await deputy('check', '--config', file, ...HANDBOOK);

    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(1);
    for (const reported of lines) {
      expect(reported).toMatch(
        new RegExp(
          `^${file.replaceAll('/', '\\/')}:\\d+:\\d+: \\(yaml\\): .+ ` +
            '\\(fix: correct the YAML syntax at this position\\)$',
        ),
      );
    }
  });

  it('decides against the stored revision and records it', async (context) => {
    const dir = tempDir(context);
    expect((await deputy('apply', '--config', ACME, '--data-dir', dir)).code).toBe(0);

    const allow = await deputy('check', '--data-dir', dir, ...HANDBOOK);
    const deny = await deputy('check', '--data-dir', dir, ...SECRETS);

    expect(allow.code).toBe(0);
    expect(allow.stdout).toMatch(/^allow \(granted\) /);
    expect(deny.code).toBe(1);
    const exported = await deputy('audit', 'export', '--data-dir', dir);
    const events = exported.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events.map((event) => [event.type, event.decision])).toEqual([
      ['policy.apply', null],
      ['decision', 'allow'],
      ['decision', 'deny'],
    ]);
    expect(events[1].actor).toEqual({ type: 'agent', id: 'helper' });
  });

  it('exits 2 when there is no store', async (context) => {
    const dir = tempDir(context);
    const result = await deputy('check', '--data-dir', dir, ...HANDBOOK);

    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `deputy: no Deputy database at ${join(dir, 'deputy.db')}: pass --data-dir or --db, or ` +
        'set DEPUTY_DATA_DIR or DEPUTY_DATABASE_URL (deputy serve or deputy apply creates one)\n',
    );
  });

  it('exits 2 when the store holds no workspace', async (context) => {
    const dir = tempDir(context);
    await deputy('keys', 'create', '--role', 'pep', '--data-dir', dir);
    const result = await deputy('check', '--data-dir', dir, ...HANDBOOK);

    expect(result.code).toBe(2);
    expect(result.stderr).toBe('deputy: pass --workspace: the store holds no workspace\n');
  });
});

describe('apply and plan', () => {
  it('shows no changes after apply', async (context) => {
    const dir = tempDir(context);
    const applied = await deputy('apply', '--config', ACME, '--data-dir', dir);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/\napplied as revision 1\n$/);

    const plan = await deputy('plan', '--config', ACME, '--data-dir', dir);

    expect(plan.code).toBe(0);
    expect(plan.stdout).toBe('against revision 1\nworkspace acme: no changes\n');
  });

  it('applies nothing when nothing changed', async (context) => {
    const dir = tempDir(context);
    await deputy('apply', '--config', ACME, '--data-dir', dir);

    const again = await deputy('apply', '--config', ACME, '--data-dir', dir);

    expect(again.code).toBe(0);
    expect(again.stdout).toBe('workspace acme is already at revision 1: no changes\n');
  });

  it('lists an added bundle with gains and losses', async (context) => {
    const dir = tempDir(context);
    await deputy('apply', '--config', ACME, '--data-dir', dir);
    const modified = join(dir, 'modified.yaml');
    writeFileSync(
      modified,
      acmeEdited([
        [
          '  - id: legal-docs\n',
          '  - id: wiki\n' +
            '    grants:\n' +
            '      - id: wiki-read\n' +
            '        actions: [wiki.read]\n' +
            '        resources: ["wiki:acme/**"]\n' +
            '\n' +
            '  - id: legal-docs\n',
        ],
        [
          '      name: general\n      visibility: public\n',
          '      name: general\n      visibility: public\n      bundles: [wiki]\n',
        ],
        ['      bundles:\n        - analytics\n', '      bundles:\n'],
      ]),
    );

    const plan = await deputy('plan', '--config', modified, '--data-dir', dir);

    expect(plan.code).toBe(0);
    expect(plan.stdout).toBe(
      [
        'against revision 1',
        'workspace acme:',
        '  + bundles wiki',
        '  ~ channels C01GENERAL',
        '  ~ channels C03DATA',
        '  access:',
        '    agent:helper in channel:C01GENERAL:',
        '      gains  wiki.read on wiki:acme/** [channel:C01GENERAL/wiki]',
        '    agent:helper in channel:C03DATA:',
        '      loses  table.read on table:analytics/public/** via warehouse ' +
          '[channel:C03DATA/analytics]',
        '      loses  tool.call on tool:warehouse/query [channel:C03DATA/analytics]',
        '',
      ].join('\n'),
    );
    const unchanged = await deputy('plan', '--config', ACME, '--data-dir', dir);
    expect(unchanged.stdout).toBe('against revision 1\nworkspace acme: no changes\n');
  });

  it('prints the plan as JSON', async (context) => {
    const dir = tempDir(context);
    const plan = await deputy('plan', '--config', ACME, '--data-dir', dir, '--json');

    expect(plan.code).toBe(0);
    const parsed = JSON.parse(plan.stdout);
    expect(parsed).toMatchObject({ base: 0, workspace: 'acme', unchanged: false });
    expect(parsed.sections).toContainEqual({
      section: 'agents',
      added: ['helper'],
      removed: [],
      changed: [],
    });
  });

  it('rejects a stale --expect-revision', async (context) => {
    const dir = tempDir(context);
    await deputy('apply', '--config', ACME, '--data-dir', dir);
    const modified = join(dir, 'modified.yaml');
    writeFileSync(modified, acmeEdited([['  name: Acme Corp\n', '  name: Acme Inc\n']]));

    const result = await deputy(
      'apply',
      '--config',
      modified,
      '--data-dir',
      dir,
      '--expect-revision',
      '0',
    );

    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'deputy: workspace acme is at revision 1, not 0: reload it and apply the change again\n',
    );
  });
});

describe('keys', () => {
  it('creates a pep key and stores only its hash', async (context) => {
    const dir = tempDir(context);
    const result = await deputy('keys', 'create', '--role', 'pep', '--data-dir', dir);

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^dpy_[a-f0-9]{16}_[A-Za-z0-9_-]{43}\n$/);
    const key = result.stdout.trim();
    const listed = await deputy('keys', 'list', '--data-dir', dir);
    expect(listed.stdout).toContain(`${key.slice(4, 20)}  pep      active`);
    expect(listed.stdout).not.toContain(key);
    const database = readFileSync(join(dir, 'deputy.db'));
    expect(database.includes(key.slice(21))).toBe(false);
  });

  it('exits 2 on an unknown role', async (context) => {
    const dir = tempDir(context);
    const result = await deputy('keys', 'create', '--role', 'nope', '--data-dir', dir);

    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('deputy: invalid --role nope: use one of admin, pep, auditor\n');
  });
});

describe('audit', () => {
  /** Applies the example and records one allowed decision, as events 1 and 2. */
  async function recordDecision(dir: string): Promise<void> {
    expect((await deputy('apply', '--config', ACME, '--data-dir', dir)).code).toBe(0);
    expect((await deputy('check', '--data-dir', dir, ...HANDBOOK)).code).toBe(0);
  }

  it('verifies an intact log', async (context) => {
    const dir = tempDir(context);
    await recordDecision(dir);

    const result = await deputy('audit', 'verify', '--data-dir', dir);

    expect(result.stdout).toBe('2/2 events valid, 2/2 checkpoints valid\n');
    expect(result.code).toBe(0);
  });

  it('exits 1 after the file is tampered with', async (context) => {
    const dir = tempDir(context);
    await recordDecision(dir);
    const sqlite = new BetterSqlite3(join(dir, 'deputy.db'));
    const changed = sqlite
      .prepare("update audit_events set body = replace(body, 'allow', 'deny') where seq = 2")
      .run();
    sqlite.close();
    expect(changed.changes).toBe(1);

    const result = await deputy('audit', 'verify', '--data-dir', dir);

    expect(result.code).toBe(1);
    // The checkpoint still matches the hash stored with event 2, but the body no longer does.
    expect(result.stdout).toBe(
      '1/2 events valid, 2/2 checkpoints valid\n' +
        'seq 2: modified: the body does not match the hash it was stored with\n',
    );
  });

  it('verifies with the exported public key', async (context) => {
    const dir = tempDir(context);
    await recordDecision(dir);
    const pem = await deputy('keys', 'audit-public-key', '--data-dir', dir);
    expect(pem.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/);
    const keyFile = join(dir, 'audit.pem');
    writeFileSync(keyFile, pem.stdout);

    const result = await deputy('audit', 'verify', '--data-dir', dir, '--public-key', keyFile);

    expect(result.code).toBe(0);
    expect(result.stdout).toBe('2/2 events valid, 2/2 checkpoints valid\n');
  });

  it('prints the report as JSON', async (context) => {
    const dir = tempDir(context);
    await recordDecision(dir);

    const result = await deputy('audit', 'verify', '--data-dir', dir, '--json');

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      ok: true,
      events: { total: 2, valid: 2 },
      checkpoints: { total: 2, valid: 2 },
      problems: [],
    });
  });

  it('exports one OCSF object per line', async (context) => {
    const dir = tempDir(context);
    await recordDecision(dir);

    const result = await deputy('audit', 'export', '--format', 'ocsf', '--data-dir', dir);

    expect(result.code).toBe(0);
    expect(result.stdout.endsWith('\n')).toBe(true);
    const lines = result.stdout.slice(0, -1).split('\n');
    expect(lines).toHaveLength(2);
    const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const event of events) {
      expect(typeof event).toBe('object');
      expect(Array.isArray(event)).toBe(false);
      expect(event.class_uid).toBe(6003);
      expect(event.category_uid).toBe(6);
    }
    expect(events.map((event) => (event.metadata as { uid: string }).uid)).toEqual(['1', '2']);
    expect(events[1]).toMatchObject({
      api: { operation: 'repo.read' },
      status_id: 1,
      status_detail: 'granted',
    });
  });

  it('exits 2 on an unknown export format', async (context) => {
    const dir = tempDir(context);
    const result = await deputy('audit', 'export', '--format', 'xml', '--data-dir', dir);

    expect(result.code).toBe(2);
    expect(result.stderr).toBe('deputy: invalid --format xml: use jsonl or ocsf\n');
  });
});

describe('help', () => {
  const COMMANDS: [command: string[], options: string[]][] = [
    [
      ['serve'],
      ['--config', '--db', '--data-dir', '--host', '--port', '--public-url', '--log-level'],
    ],
    [
      ['check'],
      [
        '--config',
        '--db',
        '--data-dir',
        '--workspace',
        '--agent',
        '--channel',
        '--invoker',
        '--action',
        '--resource',
        '--json',
      ],
    ],
    [['plan'], ['--config', '--db', '--data-dir', '--json']],
    [['apply'], ['--config', '--db', '--data-dir', '--expect-revision']],
    [
      ['audit', 'verify'],
      ['--db', '--data-dir', '--public-key', '--json'],
    ],
    [
      ['audit', 'export'],
      ['--db', '--data-dir', '--format', '--workspace', '--output'],
    ],
    [
      ['keys', 'create'],
      ['--role', '--label', '--db', '--data-dir'],
    ],
    [
      ['keys', 'list'],
      ['--db', '--data-dir'],
    ],
    [
      ['keys', 'revoke'],
      ['--db', '--data-dir'],
    ],
    [
      ['keys', 'audit-public-key'],
      ['--db', '--data-dir'],
    ],
  ];

  it.each(COMMANDS)('lists the options of %s', async (command, options) => {
    const result = await deputy(...command, '--help');

    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: deputy ${command.join(' ')}`);
    for (const option of options) {
      expect(result.stdout, option).toContain(option);
    }
  });

  it('lists every command', async () => {
    const result = await deputy('--help');

    expect(result.code).toBe(0);
    for (const command of ['serve', 'check', 'plan', 'apply', 'audit', 'keys']) {
      expect(result.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    }
  });

  it('exits 2 on an unknown command', async () => {
    const result = await deputy('frobnicate');

    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown command 'frobnicate'");
  });
});
