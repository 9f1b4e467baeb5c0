import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { InvalidId, parseResource } from '../../src/model/ids.js';
import {
  compileActionPattern,
  compileResourcePattern,
  matchAction,
  matchResource,
  matchSegments,
  PatternError,
} from '../../src/model/patterns.js';
import { referenceMatchResource, referenceMatchSegments } from './reference-match.js';

const CASE_INSENSITIVE = new Set(['repo', 'host', 'email']);

function resourceMatches(pattern: string, resource: string): boolean {
  const parsed = parseResource(resource, CASE_INSENSITIVE);
  if (parsed instanceof InvalidId) {
    throw new Error(`test resource ${resource} is invalid: ${parsed.message}`);
  }
  const compiled = compileResourcePattern(pattern, CASE_INSENSITIVE);
  return matchResource(compiled, parsed.type, parsed.path, parsed.foldedPath);
}

function compileError(compile: () => unknown): PatternError {
  try {
    compile();
  } catch (error) {
    if (error instanceof PatternError) return error;
    throw error;
  }
  throw new Error('expected a PatternError, but the pattern compiled');
}

describe('resource pattern matching', () => {
  const rows: [pattern: string, resource: string, matches: boolean][] = [
    ['repo:acme/*', 'repo:acme/api', true],
    ['repo:acme/*', 'repo:acme-evil/api', false],
    ['repo:acme/*', 'repo:acme/api/x', false],
    ['repo:acme/*', 'repo:acme', false],
    ['repo:acme/*', 'repo:acm/api', false],
    ['repo:acme/**', 'repo:acme/api', true],
    ['repo:acme/**', 'repo:acme/api/x/y', true],
    ['repo:acme/**', 'repo:acme', false],
    ['repo:acme/**', 'repo:acme-evil/api', false],
    ['repo:acme/api', 'repo:acme/api', true],
    ['repo:acme/api', 'repo:acme/api2', false],
    ['repo:acme/api', 'repo:acme/ap', false],
    ['repo:acme/api', 'repo:acme/api/x', false],
    ['repo:*/api', 'repo:acme/api', true],
    ['repo:*/api', 'repo:acme/web', false],
    ['repo:*/*/x', 'repo:a/b/x', true],
    ['repo:*/*/x', 'repo:a/x', false],
    ['repo:*/**', 'repo:a', false],
    ['repo:*/**', 'repo:a/b', true],
    ['repo:**', 'repo:a', true],
    ['repo:**', 'repo:a/b/c', true],
    ['repo:**', 'table:a', false],
    ['**', 'repo:acme/api', true],
    ['**', 'memory:workspace', true],
    ['table:warehouse/sales/**', 'table:warehouse/sales/q1', true],
    ['table:warehouse/sales/**', 'table:warehouse/salesforce/q1', false],
    ['repo:acme/secrets', 'repo:acme/Secrets', true],
    ['repo:ACME/Secrets', 'repo:acme/secrets', true],
    ['host:docs.acme.example', 'host:DOCS.Acme.Example', true],
    ['table:analytics/orders', 'table:analytics/Orders', false],
    ['table:Analytics/orders', 'table:analytics/orders', false],
    ['repo:acme/api', 'table:acme/api', false],
    ['memory:*', 'memory:dm:U01', true],
  ];

  it.each(rows)('%s against %s is %s', (pattern, resource, matches) => {
    expect(resourceMatches(pattern, resource)).toBe(matches);
  });
});

describe('action pattern matching', () => {
  const rows: [pattern: string, action: string, matches: boolean][] = [
    ['repo.read', 'repo.read', true],
    ['repo.read', 'repo.reads', false],
    ['repo.read', 'repo.read.all', false],
    ['repo.*', 'repo.read', true],
    ['repo.*', 'repo', false],
    ['repo.*', 'repo.read.all', false],
    ['repo.*', 'repository.read', false],
    ['repo.**', 'repo.read', true],
    ['repo.**', 'repo.read.all', true],
    ['repo.**', 'repo', false],
    ['*', 'deploy', true],
    ['*', 'repo.read', false],
    ['*.read', 'table.read', true],
    ['*.read', 'table.write', false],
    ['**', 'anything.at.all', true],
    ['Repo.READ', 'repo.read', true],
  ];

  it.each(rows)('%s against %s is %s', (pattern, action, matches) => {
    expect(matchAction(compileActionPattern(pattern), action)).toBe(matches);
  });
});

describe('resource pattern compile errors', () => {
  const wildcardFix =
    'a wildcard must be a whole segment: * for one segment, a trailing ** for one or more';
  const rows: [pattern: string, message: string, fix: string][] = [
    [
      'repo:acme/api*',
      'pattern "repo:acme/api*" has a wildcard inside the segment "api*"',
      wildcardFix,
    ],
    [
      'repo:*acme/api',
      'pattern "repo:*acme/api" has a wildcard inside the segment "*acme"',
      wildcardFix,
    ],
    [
      'repo:acme/a**',
      'pattern "repo:acme/a**" has a wildcard inside the segment "a**"',
      wildcardFix,
    ],
    [
      'repo:acme/***',
      'pattern "repo:acme/***" has a wildcard inside the segment "***"',
      wildcardFix,
    ],
    ['memory:dm:*', 'pattern "memory:dm:*" has a wildcard inside the segment "dm:*"', wildcardFix],
    [
      'repo:**/api',
      'pattern "repo:**/api" has ** before its last segment',
      '** may only be the last segment; use * for one segment in the middle',
    ],
    [
      'repo:acme/**/**',
      'pattern "repo:acme/**/**" has ** before its last segment',
      '** may only be the last segment; use * for one segment in the middle',
    ],
    [
      'repo:acme//api',
      'pattern "repo:acme//api" has an empty segment',
      'remove the doubled, leading or trailing "/"',
    ],
    [
      'repo:/acme',
      'pattern "repo:/acme" has an empty segment',
      'remove the doubled, leading or trailing "/"',
    ],
    [
      'repo:acme/',
      'pattern "repo:acme/" has an empty segment',
      'remove the doubled, leading or trailing "/"',
    ],
    [
      'repo:',
      'pattern "repo:" has an empty segment',
      'remove the doubled, leading or trailing "/"',
    ],
    ['repo:acme/./api', 'pattern "repo:acme/./api" has a "." segment', 'remove it'],
    ['repo:acme/../secrets', 'pattern "repo:acme/../secrets" has a ".." segment', 'remove it'],
    [
      'acme/api',
      'resource pattern "acme/api" has no type',
      'write TYPE:PATH, for example repo:acme/api, or ** for every resource',
    ],
    [
      '*',
      'resource pattern "*" has no type',
      'write TYPE:PATH, for example repo:acme/api, or ** for every resource',
    ],
    [
      'Repo:acme/api',
      'resource type "Repo" in "Repo:acme/api" is invalid',
      'a type is lowercase letters, digits, _ and -, starting with a letter',
    ],
    [
      '*:acme/api',
      'resource type "*" in "*:acme/api" is invalid',
      'a type is lowercase letters, digits, _ and -, starting with a letter',
    ],
    [
      'table:caf\u0065\u0301',
      'pattern "table:caf\u0065\u0301" is not in Unicode NFC',
      'write it in NFC form',
    ],
    [
      'repo:acme/se\u200bcrets',
      'pattern "repo:acme/se\u200bcrets" contains a control or format character',
      'remove it',
    ],
  ];

  it.each(rows)('%j is rejected', (pattern, message, fix) => {
    const error = compileError(() => compileResourcePattern(pattern, CASE_INSENSITIVE));
    expect(error.message).toBe(message);
    expect(error.fix).toBe(fix);
  });
});

describe('action pattern compile errors', () => {
  const segmentFix =
    'an action is .-separated segments of letters, digits, _ and -; ' +
    'use * for one whole segment or a trailing ** for the rest';
  const rows: [pattern: string, message: string, fix: string][] = [
    ['repo.re*', 'action pattern "repo.re*" has an invalid segment "re*"', segmentFix],
    ['repo..read', 'action pattern "repo..read" has an invalid segment ""', segmentFix],
    ['.repo', 'action pattern ".repo" has an invalid segment ""', segmentFix],
    ['repo.', 'action pattern "repo." has an invalid segment ""', segmentFix],
    ['répo.read', 'action pattern "répo.read" has an invalid segment "répo"', segmentFix],
    ['repo/read', 'action pattern "repo/read" has an invalid segment "repo/read"', segmentFix],
    [
      '**.read',
      'pattern "**.read" has ** before its last segment',
      '** may only be the last segment; use * for one segment in the middle',
    ],
  ];

  it.each(rows)('%j is rejected', (pattern, message, fix) => {
    const error = compileError(() => compileActionPattern(pattern));
    expect(error.message).toBe(message);
    expect(error.fix).toBe(fix);
  });
});

/** Segments that are prefixes of one another, so a matcher that ignores boundaries is caught. */
const SEGMENTS = ['a', 'ab', 'b', 'a-b'];

const pathArbitrary = fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 5 });

const patternArbitrary = fc.oneof(
  { weight: 1, arbitrary: fc.constant(['**']) },
  {
    weight: 9,
    arbitrary: fc
      .tuple(
        fc.array(fc.constantFrom(...SEGMENTS, '*', '*'), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
      )
      .map(([segments, tail]) => (tail ? [...segments, '**'] : segments)),
  },
);

describe('matchSegments against a reference', () => {
  it('agrees for / separated paths', () => {
    fc.assert(
      fc.property(patternArbitrary, pathArbitrary, (patternSegments, pathSegments) => {
        const pattern = patternSegments.join('/');
        const path = pathSegments.join('/');
        const compiled = compileResourcePattern(`t:${pattern}`, new Set()).path;
        expect(matchSegments(compiled, path)).toBe(referenceMatchSegments(pattern, path, '/'));
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees for . separated actions', () => {
    fc.assert(
      fc.property(patternArbitrary, pathArbitrary, (patternSegments, pathSegments) => {
        const pattern = patternSegments.join('.');
        const action = pathSegments.join('.');
        const compiled = compileActionPattern(pattern).path;
        expect(matchSegments(compiled, action)).toBe(referenceMatchSegments(pattern, action, '.'));
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees on case folding by type', () => {
    const mixedCase = ['a', 'A', 'ab', 'aB'];
    const resourceArbitrary = fc.tuple(
      fc.constantFrom('repo', 'table'),
      fc.array(fc.constantFrom(...mixedCase), { minLength: 1, maxLength: 4 }),
    );
    const patternSegments = fc.array(fc.constantFrom(...mixedCase, '*'), {
      minLength: 1,
      maxLength: 4,
    });
    fc.assert(
      fc.property(resourceArbitrary, patternSegments, ([type, segments], pattern) => {
        const resource = `${type}:${segments.join('/')}`;
        const source = `${type}:${pattern.join('/')}`;
        expect(resourceMatches(source, resource)).toBe(
          referenceMatchResource(source, resource, CASE_INSENSITIVE),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('matches often enough to matter', () => {
    // Guards the generators above: a reference that almost never matches would prove little.
    const samples = fc.sample(fc.tuple(patternArbitrary, pathArbitrary), {
      numRuns: 2000,
      seed: 7,
    });
    const matches = samples.filter(([pattern, path]) =>
      referenceMatchSegments(pattern.join('/'), path.join('/'), '/'),
    ).length;
    expect(matches).toBeGreaterThan(200);
  });
});
