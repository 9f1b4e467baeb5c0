import { describe, expect, it } from 'vitest';

import {
  ConfigError,
  type ConfigIssue,
  formatConfigIssue,
  loadPolicyFile,
  parsePolicyText,
} from '../../src/config/load.js';

const FILE = 'deputy.yaml';

/** Joins lines into a document, so a test can count lines by reading the array. */
function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

const HEADER = ['version: 1', 'workspace:', '  id: acme'];

function configError(text: string): ConfigError {
  try {
    parsePolicyText(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the document loaded');
}

function issuesOf(text: string): readonly ConfigIssue[] {
  return configError(text).issues;
}

describe('example workspace', () => {
  it('loads acme from disk', async () => {
    const policy = await loadPolicyFile('examples/acme/deputy.yaml');

    expect(policy.workspace.id).toBe('acme');
    expect(policy.agents.map((agent) => agent.id)).toEqual(['helper']);
    expect(policy.bundles.map((bundle) => bundle.id)).toEqual([
      'baseline',
      'engineering',
      'analytics',
      'incident-write',
      'crm',
      'legal-docs',
    ]);
    expect(policy.scopes.channels).toHaveLength(7);
    expect(policy.guardrails.map((rule) => rule.id)).toEqual([
      'no-secrets-repo',
      'no-payroll',
      'no-memory-deletes',
      'no-crm-writes-in-public',
    ]);
  });

  it('normalizes bare attachments', async () => {
    const policy = await loadPolicyFile('examples/acme/deputy.yaml');
    const data = policy.scopes.channels.find((channel) => channel.id === 'C03DATA');

    expect(data?.bundles).toEqual([
      { bundle: 'analytics' },
      { bundle: 'incident-write', until: '2027-01-31T23:59:59Z' },
    ]);
  });

  it('reports an unreadable file', async () => {
    const error = await loadPolicyFile('examples/acme/missing.yaml').catch((caught) => caught);

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      {
        file: 'examples/acme/missing.yaml',
        line: 1,
        column: 1,
        path: '(file)',
        message: 'cannot read the file (ENOENT)',
      },
    ]);
  });
});

describe('YAML syntax errors', () => {
  it('locates a tab indent', () => {
    const issues = issuesOf(yaml('version: 1', 'workspace:', '\tid: acme'));

    expect(issues).toEqual([
      {
        file: FILE,
        line: 3,
        column: 1,
        path: '(yaml)',
        message: 'Tabs are not allowed as indentation',
        fix: 'correct the YAML syntax at this position',
      },
    ]);
  });

  it('locates a duplicate key', () => {
    const issues = issuesOf(yaml(...HEADER, 'version: 1'));

    expect(issues).toHaveLength(1);
    expect(issues[0]?.line).toBe(4);
    expect(issues[0]?.column).toBe(1);
    expect(issues[0]?.path).toBe('(yaml)');
    expect(issues[0]?.message).toBe('Map keys must be unique');
  });

  it('locates a nested compact mapping', () => {
    const issues = issuesOf(yaml(...HEADER, 'agents:', '  - id: helper: x'));

    expect(issues).toHaveLength(1);
    expect(issues[0]?.line).toBe(5);
    expect(issues[0]?.column).toBe(9);
    expect(issues[0]?.message).toBe('Nested mappings are not allowed in compact mappings');
  });

  it('rejects several documents', () => {
    const issues = issuesOf(yaml(...HEADER, '---', 'version: 1'));

    expect(issues).toHaveLength(1);
    expect(issues[0]?.line).toBe(4);
    expect(issues[0]?.column).toBe(1);
    expect(issues[0]?.message).toMatch(/^Source contains multiple documents/);
  });

  // Aliases that expand exponentially must be rejected as a configuration error, not escape
  // as an unrelated exception from the YAML library.
  it('rejects an alias bomb', () => {
    const lines = [...HEADER, 'x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let level = 1; level < 9; level++) {
      const aliases = Array.from({ length: 10 }, () => `*a${level - 1}`).join(', ');
      lines.push(`x${level}: &a${level} [${aliases}]`);
    }

    expect(issuesOf(yaml(...lines))).toEqual([
      {
        file: FILE,
        line: 1,
        column: 1,
        path: '(yaml)',
        message: 'Excessive alias count indicates a resource exhaustion attack',
        fix: 'use fewer nested aliases',
      },
    ]);
  });
});

describe('schema errors', () => {
  it('locates a missing key', () => {
    const issues = issuesOf(yaml('version: 1', 'workspace:', '  name: Acme'));

    expect(issues).toEqual([
      {
        file: FILE,
        line: 3,
        column: 3,
        path: 'workspace.id',
        message: 'missing required key',
        fix: 'add workspace.id',
      },
    ]);
  });

  it('locates a missing grant key', () => {
    const issues = issuesOf(
      yaml(
        ...HEADER,
        'bundles:',
        '  - id: eng',
        '    grants:',
        '      - actions: [repo.read]',
        '        resources: ["repo:acme/api"]',
        '      - resources: ["repo:acme/web"]',
      ),
    );

    expect(issues).toEqual([
      {
        file: FILE,
        line: 9,
        column: 9,
        path: 'bundles[0].grants[1].actions',
        message: 'missing required key',
        fix: 'add bundles[0].grants[1].actions',
      },
    ]);
  });

  it('locates an unknown key', () => {
    const issues = issuesOf(
      yaml(
        ...HEADER,
        'bundles:',
        '  - id: eng',
        '    grants:',
        '      - actions: [repo.read]',
        '        resources: ["repo:acme/api"]',
        '        approvl: required',
      ),
    );

    // The key itself, at column 9, and not its value at column 18.
    expect(issues).toEqual([
      {
        file: FILE,
        line: 9,
        column: 9,
        path: 'bundles[0].grants[0].approvl',
        message: 'unknown key approvl',
        fix: 'remove it or check its spelling against the configuration reference',
      },
    ]);
  });

  it('locates a key with a nested value', () => {
    const issues = issuesOf(yaml(...HEADER, 'guardrail:', '  - id: x'));

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('guardrail');
    expect(issues[0]?.line).toBe(4);
    expect(issues[0]?.column).toBe(1);
  });

  it('lists several unknown keys', () => {
    const issues = issuesOf(yaml(...HEADER, '  nam: Acme', '  colour: red'));

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('workspace.nam');
    expect(issues[0]?.message).toBe('unknown key nam, colour');
    expect(issues[0]?.line).toBe(4);
    expect(issues[0]?.column).toBe(3);
  });

  // A key that is present with the wrong type is not missing: the message names the expected
  // type instead of asking for a key that is already there.
  it('names a wrong type', () => {
    const issues = issuesOf(
      yaml(...HEADER, 'bundles:', '  - id: eng', '    grants:', '      - actions: 5'),
    );

    expect(issues.map((issue) => [issue.path, issue.line, issue.column, issue.message])).toEqual([
      ['bundles[0].grants[0].actions', 7, 18, 'Invalid input: expected array, received number'],
      ['bundles[0].grants[0].resources', 7, 9, 'missing required key'],
    ]);
  });

  it('names an empty value', () => {
    const issues = issuesOf(
      yaml(
        ...HEADER,
        'bundles:',
        '  - id: eng',
        '    grants:',
        '      - actions:',
        '        resources: ["repo:acme/api"]',
      ),
    );

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('bundles[0].grants[0].actions');
    expect(issues[0]?.message).toBe('Invalid input: expected array, received null');
  });

  it('calls a missing version missing', () => {
    const issues = issuesOf(yaml('workspace:', '  id: acme'));

    expect(issues).toEqual([
      {
        file: FILE,
        line: 1,
        column: 1,
        path: 'version',
        message: 'missing required key',
        fix: 'add version',
      },
    ]);
  });

  it('rejects an empty document', () => {
    const issues = issuesOf('');

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('(document)');
    expect(issues[0]?.message).toBe('Invalid input: expected object, received null');
  });

  // Every issue should tell the user how to fix it; the schema's own messages carry no fix.
  it('gives every issue a fix', () => {
    const documents = [
      yaml(...HEADER, 'bundles:', '  - id: eng', '    grants:', '      - actions: 5'),
      yaml(...HEADER, 'agents:', '  - id: helper', '    status: paused'),
      '',
    ];
    const withoutFix = documents
      .flatMap((text) => issuesOf(text))
      .filter((issue) => issue.fix === undefined)
      .map((issue) => issue.path);

    expect(withoutFix).toEqual([]);
  });

  it('rejects an attachment end without offset', () => {
    const issues = issuesOf(
      yaml(
        ...HEADER,
        'bundles:',
        '  - id: b',
        'scopes:',
        '  workspace:',
        '    bundles:',
        '      - bundle: b',
        '        until: "2027-01-31T23:59:59"',
      ),
    );

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('scopes.workspace.bundles[0].until');
    expect(issues[0]?.line).toBe(10);
    expect(issues[0]?.column).toBe(16);
  });
});

describe('pattern errors', () => {
  it('locates a partial wildcard', () => {
    const issues = issuesOf(
      yaml(
        ...HEADER,
        'connections:',
        '  - id: github',
        '    kind: http',
        'bundles:',
        '  - id: eng',
        '    grants:',
        '      - actions: [repo.read]',
        '        resources: ["repo:acme/*"]',
        '      - connection: github',
        '        actions: [repo.write]',
        '        resources: ["repo:acme/api*"]',
      ),
    );

    expect(issues).toEqual([
      {
        file: FILE,
        line: 14,
        column: 21,
        path: 'bundles[0].grants[1].resources[0]',
        message: 'pattern "repo:acme/api*" has a wildcard inside the segment "api*"',
        fix: 'a wildcard must be a whole segment: * for one segment, a trailing ** for one or more',
      },
    ]);
  });

  it('locates a pattern in flow style', () => {
    const issues = issuesOf(
      yaml(
        ...HEADER,
        'bundles:',
        '  - id: eng',
        '    grants:',
        '      - { actions: [repo.read], resources: [repo:acme/api, "repo:**/x"] }',
      ),
    );

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('bundles[0].grants[0].resources[1]');
    expect(issues[0]?.line).toBe(7);
    expect(issues[0]?.column).toBe(60);
    expect(issues[0]?.message).toBe('pattern "repo:**/x" has ** before its last segment');
  });

  it('locates a bad action pattern', () => {
    const issues = issuesOf(
      yaml(
        ...HEADER,
        'guardrails:',
        '  - id: no-secrets',
        '    actions: ["repo.re*"]',
        '    resources: ["repo:acme/secrets"]',
      ),
    );

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('guardrails[0].actions[0]');
    expect(issues[0]?.line).toBe(6);
    expect(issues[0]?.column).toBe(15);
    expect(issues[0]?.message).toBe('action pattern "repo.re*" has an invalid segment "re*"');
  });
});

describe('reference errors', () => {
  const issues = issuesOf(
    yaml(
      ...HEADER,
      'groups:',
      '  - id: eng',
      'members:',
      '  - id: U1',
      '    groups: [eng, sales]',
      'agents:',
      '  - id: helper',
      'bundles:',
      '  - id: b',
      '    grants:',
      '      - connection: gh',
      '        actions: [repo.read]',
      '        resources: ["repo:acme/api"]',
      'scopes:',
      '  workspace:',
      '    bundles: [b, missing]',
      '    invokers: [U1, U9, group:eng, group:ops]',
      '  channels:',
      '    - id: C1',
      '      visibility: public',
      '      bundles:',
      '        - bundle: b',
      '          agents: [helper, ghost]',
    ),
  );

  const rows: [path: string, line: number, column: number, message: string, fix: string][] = [
    [
      'members[0].groups[1]',
      8,
      19,
      'unknown group "sales"',
      'define it under groups or fix the id',
    ],
    [
      'bundles[0].grants[0].connection',
      14,
      21,
      'unknown connection "gh"',
      'define it under connections or fix the id',
    ],
    [
      'scopes.workspace.bundles[1].bundle',
      19,
      18,
      'unknown bundle "missing"',
      'define it under bundles or fix the id',
    ],
    [
      'scopes.workspace.invokers[1]',
      20,
      20,
      'unknown member "U9"',
      'define it under members or fix the id',
    ],
    [
      'scopes.workspace.invokers[3]',
      20,
      35,
      'unknown group "ops"',
      'define it under groups or fix the id',
    ],
    [
      'scopes.channels[0].bundles[0].agents[1]',
      26,
      28,
      'unknown agent "ghost"',
      'define it under agents or fix the id',
    ],
  ];

  it('reports every unknown reference', () => {
    expect(issues.map((issue) => issue.path)).toEqual(rows.map(([path]) => path));
  });

  it.each(rows)('%s', (path, line, column, message, fix) => {
    expect(issues.find((issue) => issue.path === path)).toEqual({
      file: FILE,
      line,
      column,
      path,
      message,
      fix,
    });
  });
});

describe('duplicate ids', () => {
  const issues = issuesOf(
    yaml(
      ...HEADER,
      'members:',
      '  - id: U1',
      '  - id: U2',
      '  - id: U1',
      'bundles:',
      '  - id: b',
      '    grants:',
      '      - id: g',
      '        actions: [a]',
      '        resources: ["x:y"]',
      '      - id: g',
      '        actions: [a]',
      '        resources: ["x:z"]',
      '  - id: b',
    ),
  );

  it('locates the repeated member', () => {
    expect(issues.find((issue) => issue.path === 'members[2].id')).toEqual({
      file: FILE,
      line: 7,
      column: 9,
      path: 'members[2].id',
      message: 'duplicate id "U1"',
      fix: 'give each entry its own id',
    });
  });

  it('locates the repeated bundle', () => {
    const issue = issues.find((candidate) => candidate.path === 'bundles[1].id');

    expect(issue?.line).toBe(17);
    expect(issue?.column).toBe(9);
    expect(issue?.message).toBe('duplicate id "b"');
  });

  it('locates the repeated grant id', () => {
    const issue = issues.find((candidate) => candidate.path === 'bundles[0].grants[1].id');

    expect(issue?.line).toBe(14);
    expect(issue?.column).toBe(13);
    expect(issue?.message).toBe('duplicate grant id "g"');
  });

  it('reports nothing else', () => {
    expect(issues.map((issue) => issue.path).sort()).toEqual([
      'bundles[0].grants[1].id',
      'bundles[1].id',
      'members[2].id',
    ]);
  });

  it('gives the grant id a fix', () => {
    const issue = issues.find((candidate) => candidate.path === 'bundles[0].grants[1].id');

    expect(issue?.fix).toBe('give each grant of a bundle its own id');
  });
});

describe('channel rules', () => {
  it('requires private channel members', () => {
    const issues = issuesOf(
      yaml(...HEADER, 'scopes:', '  channels:', '    - id: C1', '      visibility: private'),
    );

    expect(issues).toEqual([
      {
        file: FILE,
        line: 6,
        column: 7,
        path: 'scopes.channels[0].members',
        message: 'private channel "C1" has no members list',
        fix: 'list its members (member ids or group:<id>); without it nobody could invoke the agent there',
      },
    ]);
  });

  it('accepts an empty members list', () => {
    const policy = parsePolicyText(
      yaml(
        ...HEADER,
        'scopes:',
        '  channels:',
        '    - id: C1',
        '      visibility: private',
        '      members: []',
      ),
      FILE,
    );

    expect(policy.scopes.channels[0]?.members).toEqual([]);
  });
});

describe('connection secrets', () => {
  const SECRET = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789';

  const connection = (secret: string) =>
    yaml(
      ...HEADER,
      'connections:',
      '  - id: github',
      '    kind: http',
      '    credential:',
      `      secret: ${secret}`,
      '      scheme: bearer',
    );

  it('rejects an inline secret', () => {
    expect(issuesOf(connection(SECRET))).toEqual([
      {
        file: FILE,
        line: 8,
        column: 15,
        path: 'connections[0].credential.secret',
        message: 'inline secrets are not allowed in the configuration',
        fix:
          'write env:NAME to read an environment variable, file:/ABSOLUTE/PATH to read a file, ' +
          'or stored to use a value set through the admin API',
      },
    ]);
  });

  it('never echoes the secret', () => {
    const error = configError(connection(SECRET));

    expect(error.message).not.toContain(SECRET);
    expect(String(error)).not.toContain(SECRET);
    expect(error.stack ?? '').not.toContain(SECRET);
    expect(JSON.stringify(error.issues)).not.toContain(SECRET);
    expect(error.issues.map(formatConfigIssue).join('\n')).not.toContain(SECRET);
  });

  it('never echoes a bare credential', () => {
    const error = configError(
      yaml(
        ...HEADER,
        'connections:',
        '  - id: github',
        '    kind: http',
        `    credential: ${SECRET}`,
      ),
    );

    expect(error.issues[0]?.path).toBe('connections[0].credential');
    expect(error.message).not.toContain(SECRET);
    expect(JSON.stringify(error.issues)).not.toContain(SECRET);
  });

  it('never echoes a secret in broken YAML', () => {
    const error = configError(connection(`"${SECRET}`));

    expect(error.issues[0]?.path).toBe('(yaml)');
    expect(error.message).not.toContain(SECRET);
  });

  it.each(['env:ACME_GITHUB_TOKEN', 'file:/run/secrets/github-token', 'stored'])(
    'accepts %s',
    (reference) => {
      const policy = parsePolicyText(connection(`"${reference}"`), FILE);

      expect(policy.connections[0]?.credential?.secret).toBe(reference);
    },
  );

  it.each(['env:1TOKEN', 'env:', 'file:', 'STORED', 'Bearer abc'])('rejects %s', (reference) => {
    const issues = issuesOf(connection(`"${reference}"`));

    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('connections[0].credential.secret');
    expect(issues[0]?.message).toBe('inline secrets are not allowed in the configuration');
  });
});

describe('ConfigError', () => {
  const text = yaml(
    ...HEADER,
    'members:',
    '  - id: U1',
    '    groups: [ops]',
    'scopes:',
    '  channels:',
    '    - id: C1',
    '      visibility: private',
  );

  it('collects every issue', () => {
    const error = configError(text);

    expect(error.code).toBe('ERR_CONFIG_INVALID');
    expect(error.name).toBe('ConfigError');
    expect(error.issues.map((issue) => issue.path)).toEqual([
      'members[0].groups[0]',
      'scopes.channels[0].members',
    ]);
  });

  it('formats issues one per line', () => {
    const error = configError(text);

    expect(error.message).toBe(
      [
        'deputy.yaml:6:14: members[0].groups[0]: unknown group "ops" ' +
          '(fix: define it under groups or fix the id)',
        'deputy.yaml:9:7: scopes.channels[0].members: private channel "C1" has no members list ' +
          '(fix: list its members (member ids or group:<id>); ' +
          'without it nobody could invoke the agent there)',
      ].join('\n'),
    );
  });
});
