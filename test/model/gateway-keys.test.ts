/** Validation of the connection keys the gateway uses. */
import { describe, expect, it } from 'vitest';

import { parsePolicy } from '../../src/model/validate.js';

const MEMORY = ['node', 'memory.js'];

function problems(connection: Record<string, unknown>): string[] {
  const parsed = parsePolicy({ version: 1, workspace: { id: 'w' }, connections: [connection] });
  return parsed.ok ? [] : parsed.issues.map((issue) => issue.message);
}

describe('gateway connection keys', () => {
  it('accepts a memory server per compartment', () => {
    expect(
      problems({
        id: 'memory',
        kind: 'mcp',
        command: MEMORY,
        env: { MEMORY_FILE_PATH: '{compartment}/memory.jsonl' },
        compartments: true,
      }),
    ).toEqual([]);
  });

  it.each([
    [
      'a placeholder without compartments',
      { id: 'm', kind: 'mcp', command: MEMORY, env: { FILE: '{compartment}/m.jsonl' } },
      '{compartment} is used but compartments is not true, so every compartment would share one store',
    ],
    [
      'compartments without a placeholder',
      { id: 'm', kind: 'mcp', command: MEMORY, compartments: true },
      'compartments: true needs {compartment} in env or command, or every compartment process would use the same store',
    ],
    [
      '__ in an mcp connection id',
      { id: 'ops__admin', kind: 'mcp', command: MEMORY },
      'mcp connection id "ops__admin" contains __',
    ],
    [
      'an mcp connection with neither command nor url',
      { id: 'm', kind: 'mcp' },
      'an mcp connection needs exactly one of command and url',
    ],
    [
      'scheme env without a name',
      { id: 'm', kind: 'mcp', command: MEMORY, credential: { secret: 'env:X', scheme: 'env' } },
      'scheme env needs name: the environment variable to set',
    ],
    [
      'a route resource with an uncaptured name',
      {
        id: 'api',
        kind: 'http',
        url: 'https://api.example.com',
        routes: [{ methods: ['GET'], path: '/items/{id}', action: 'item.read', resource: 'item:{other}' }],
      },
      '{other} is not captured by the route path',
    ],
  ])('rejects %s', (_case, connection, message) => {
    expect(problems(connection)).toEqual([message]);
  });

  it('accepts {compartment} in command arguments', () => {
    expect(
      problems({
        id: 'notes',
        kind: 'mcp',
        command: ['node', 'notes.js', '--dir', '{compartment}'],
        compartments: true,
      }),
    ).toEqual([]);
  });
});
