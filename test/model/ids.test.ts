import { describe, expect, it } from 'vitest';

import { InvalidId, parseAction, parseResource } from '../../src/model/ids.js';

const CASE_INSENSITIVE = new Set(['repo', 'host', 'email']);

/** Returns the explanation of an invalid id, or the parsed value of a valid one. */
function outcomeOf<T>(result: T | InvalidId): T | string {
  return result instanceof InvalidId ? result.message : result;
}

const CONTROL = 'resource path contains a control character';
const CONTROL_OR_FORMAT = 'resource path contains a control or format character';
const NOT_NFC = 'resource path is not in Unicode NFC';

describe('parseResource accepts', () => {
  const rows: [resource: string, type: string, path: string, foldedPath: string][] = [
    ['repo:acme/api', 'repo', 'acme/api', 'acme/api'],
    ['repo:Acme/API', 'repo', 'Acme/API', 'acme/api'],
    ['table:Analytics/Orders', 'table', 'Analytics/Orders', 'Analytics/Orders'],
    ['host:Docs.Acme.Example', 'host', 'Docs.Acme.Example', 'docs.acme.example'],
    ['memory:dm:U01ALICE', 'memory', 'dm:U01ALICE', 'dm:U01ALICE'],
    ['repo:acme', 'repo', 'acme', 'acme'],
    ['repo:acme/.github', 'repo', 'acme/.github', 'acme/.github'],
    ['repo:acme/...', 'repo', 'acme/...', 'acme/...'],
    ['doc:acme/my doc', 'doc', 'acme/my doc', 'acme/my doc'],
    ['doc:acme/caf\u00e9', 'doc', 'acme/caf\u00e9', 'acme/caf\u00e9'],
    // Fullwidth letters are NFC and stay distinct from their ASCII look-alikes.
    ['doc:acme/ＳＥＣＲＥＴＳ', 'doc', 'acme/ＳＥＣＲＥＴＳ', 'acme/ＳＥＣＲＥＴＳ'],
    ['doc:acme/\u{1f680}', 'doc', 'acme/\u{1f680}', 'acme/\u{1f680}'],
    ['t-1_x:a', 't-1_x', 'a', 'a'],
  ];

  it.each(rows)('%j', (resource, type, path, foldedPath) => {
    expect(outcomeOf(parseResource(resource, CASE_INSENSITIVE))).toEqual({
      type,
      path,
      foldedPath,
    });
  });
});

const HOST =
  'a host resource must be an ASCII DNS name or dotted-decimal IPv4 address, ' +
  'without a port or trailing dot';
const ASCII_ONLY = 'ids of the case-insensitive type repo must be printable ASCII without spaces';

describe('parseResource rejects', () => {
  const rows: [label: string, resource: string, problem: string][] = [
    ['no colon', 'repoacme', 'resource must be TYPE:PATH'],
    ['empty type', ':acme/api', 'resource must be TYPE:PATH'],
    ['uppercase type', 'Repo:acme/api', 'resource type must be lowercase letters, digits, _ and -'],
    ['all-caps type', 'REPO:acme/api', 'resource type must be lowercase letters, digits, _ and -'],
    [
      'type starting with a digit',
      '1repo:acme',
      'resource type must be lowercase letters, digits, _ and -',
    ],
    ['empty path', 'repo:', 'resource path is empty'],
    ['host with a port', 'host:docs.acme.example:443', HOST],
    ['host with a trailing dot', 'host:docs.acme.example.', HOST],
    ['host in fullwidth letters', 'host:\uff44ocs.acme.example', HOST],
    ['host with a path', 'host:docs.acme.example/x', HOST],
    ['host as one decimal number', 'host:2130706433', HOST],
    ['host in hexadecimal', 'host:0x7f.1', HOST],
    ['host with a short IPv4 form', 'host:127.1', HOST],
    ['host with a leading zero', 'host:127.0.0.01', HOST],
    ['repo with a long s', 'repo:lab/\u017fecrets', ASCII_ONLY],
    ['repo with a dotless i', 'repo:lab/\u0131nfra', ASCII_ONLY],
    ['repo in fullwidth letters', 'repo:lab/\uff53ecrets', ASCII_ONLY],
    ['repo with a space', 'repo:lab/secrets ', ASCII_ONLY],
    [
      'segment ending in a space',
      'doc:lab/secrets /x',
      'resource path has a segment that starts or ends with white space',
    ],
    ['doubled slash', 'repo:acme//api', 'resource path has an empty segment'],
    ['leading slash', 'repo:/acme', 'resource path has an empty segment'],
    ['trailing slash', 'repo:acme/', 'resource path has an empty segment'],
    ['dot segment', 'repo:acme/./api', 'resource path has a . or .. segment'],
    ['dot-dot segment', 'repo:acme/../secrets', 'resource path has a . or .. segment'],
    ['lone dot path', 'repo:.', 'resource path has a . or .. segment'],
    ['star', 'repo:acme/*', 'resource path contains *, which is reserved for patterns'],
    [
      'star inside a segment',
      'repo:acme/a*',
      'resource path contains *, which is reserved for patterns',
    ],
    ['NFD e with combining acute', 'repo:acme/cafe\u0301', NOT_NFC],
    ['Kelvin sign', 'repo:acme/\u212aey', NOT_NFC],
    ['Angstrom sign', 'repo:acme/\u212b', NOT_NFC],
    ['zero-width space', 'repo:acme/se\u200bcrets', CONTROL_OR_FORMAT],
    ['zero-width joiner', 'repo:acme/se\u200dcrets', CONTROL_OR_FORMAT],
    ['right-to-left override', 'repo:acme/\u202esterces', CONTROL_OR_FORMAT],
    ['byte order mark', 'repo:\ufeffacme/api', CONTROL_OR_FORMAT],
    ['soft hyphen', 'repo:acme/se\u00adcrets', CONTROL_OR_FORMAT],
    ['C1 next line', 'repo:acme/a\u0085b', CONTROL_OR_FORMAT],
    ['line separator', 'repo:acme/a\u2028b', CONTROL_OR_FORMAT],
    // UTF-8 encoding turns a lone surrogate into U+FFFD, merging distinct ids downstream.
    ['lone high surrogate', 'repo:acme/a\ud800', 'resource path contains a lone surrogate'],
    ['lone low surrogate', 'repo:acme/\udc00b', 'resource path contains a lone surrogate'],
    ['NUL', 'repo:acme/a\u0000b', CONTROL],
    ['DEL', 'repo:acme/a\u007fb', CONTROL],
    ['tab', 'repo:acme/a\tb', CONTROL],
    ['newline', 'repo:acme/a\nb', CONTROL],
  ];

  it.each(rows)('%s', (_label, resource, problem) => {
    expect(outcomeOf(parseResource(resource, CASE_INSENSITIVE))).toBe(problem);
  });
});

describe('parseAction', () => {
  const invalid = 'action must be .-separated segments of letters, digits, _ and -';
  const rows: [action: string, expected: string][] = [
    ['repo.read', 'repo.read'],
    ['REPO.Read', 'repo.read'],
    ['deploy', 'deploy'],
    ['repo_x-y.read.all', 'repo_x-y.read.all'],
    ['repo..read', 'action has an empty segment'],
    ['.repo', 'action has an empty segment'],
    ['repo.', 'action has an empty segment'],
    ['', 'action has an empty segment'],
    ['repo.*', invalid],
    ['repo read', invalid],
    ['repo/read', invalid],
    ['répo.read', invalid],
    ['repo.read\u200b', invalid],
    ['ｒｅｐｏ.read', invalid],
    ['repo.read\u0000', invalid],
    ['repo.\u212aey', invalid],
  ];

  it.each(rows)('%j', (action, expected) => {
    expect(outcomeOf(parseAction(action))).toEqual(expected);
  });
});
