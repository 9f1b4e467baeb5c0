/**
 * Action and resource patterns.
 *
 * Resources are `TYPE:PATH` with `/`-separated path segments; actions are `.`-separated
 * segments. In a pattern, `*` matches exactly one whole segment and a trailing `**` matches one
 * or more segments. A pattern that is just `**` matches everything. Wildcards inside a segment
 * (`api*`) and `**` anywhere but last are rejected when the pattern is compiled, so a pattern
 * can never match across a segment boundary by accident.
 */

/** A compiled segment pattern: literal chunks and one-segment wildcards (`null`). */
export interface SegmentPattern {
  /** Literal runs (which may span several segments) and `null` for `*`. */
  readonly tokens: readonly (string | null)[];
  /** Whether a trailing `**` requires one or more further segments. */
  readonly tail: boolean;
  /** Separator character code: `/` for resource paths, `.` for actions. */
  readonly separator: number;
  readonly separatorText: string;
}

export interface ResourcePattern {
  readonly source: string;
  /** `null` when the pattern is `**` and matches every resource of every type. */
  readonly type: string | null;
  readonly path: SegmentPattern;
  /** Paths of case-insensitive types are compared lower-cased. */
  readonly caseInsensitive: boolean;
}

export interface ActionPattern {
  readonly source: string;
  readonly any: boolean;
  readonly path: SegmentPattern;
}

/** Raised for a pattern that cannot be compiled. `fix` describes how to write it. */
export class PatternError extends Error {
  readonly fix: string;

  constructor(message: string, fix: string) {
    super(message);
    this.name = 'PatternError';
    this.fix = fix;
  }
}

const SLASH = 0x2f;
const DOT = 0x2e;
const TYPE_PATTERN = /^[a-z][a-z0-9_-]*$/;
const ACTION_SEGMENT = /^[a-z0-9_-]+$/;

/** Compiles a resource pattern such as `repo:acme/*` or `table:warehouse/sales/**`. */
export function compileResourcePattern(
  source: string,
  caseInsensitiveTypes: ReadonlySet<string>,
): ResourcePattern {
  if (source === '**') {
    return { source, type: null, path: anyPath(SLASH), caseInsensitive: false };
  }
  const colon = source.indexOf(':');
  if (colon <= 0) {
    throw new PatternError(
      `resource pattern "${source}" has no type`,
      'write TYPE:PATH, for example repo:acme/api, or ** for every resource',
    );
  }
  const type = source.slice(0, colon);
  if (!TYPE_PATTERN.test(type)) {
    throw new PatternError(
      `resource type "${type}" in "${source}" is invalid`,
      'a type is lowercase letters, digits, _ and -, starting with a letter',
    );
  }
  const caseInsensitive = caseInsensitiveTypes.has(type);
  const rawPath = source.slice(colon + 1);
  // Checked before folding, so a character that lower-cases to ASCII (the Kelvin sign) is
  // rejected in every type alike.
  checkPatternText(rawPath, source);
  if (caseInsensitive && !/^[\x21-\x7e]*$/.test(rawPath)) {
    throw new PatternError(
      `pattern "${source}" of the case-insensitive type ${type} is not printable ASCII`,
      'write ASCII letters, digits and punctuation only, without spaces',
    );
  }
  const path = caseInsensitive ? rawPath.toLowerCase() : rawPath;
  return { source, type, path: compileSegments(path, SLASH, source), caseInsensitive };
}

/** Compiles an action pattern such as `repo.read`, `crm.*` or `**`. Actions are lower-cased. */
export function compileActionPattern(source: string): ActionPattern {
  if (source === '**') {
    return { source, any: true, path: anyPath(DOT) };
  }
  const folded = source.toLowerCase();
  for (const segment of folded.split('.')) {
    if (segment !== '*' && segment !== '**' && !ACTION_SEGMENT.test(segment)) {
      throw new PatternError(
        `action pattern "${source}" has an invalid segment "${segment}"`,
        'an action is .-separated segments of letters, digits, _ and -; ' +
          'use * for one whole segment or a trailing ** for the rest',
      );
    }
  }
  return { source, any: false, path: compileSegments(folded, DOT, source) };
}

function anyPath(separator: number): SegmentPattern {
  return { tokens: [], tail: true, separator, separatorText: String.fromCharCode(separator) };
}

function checkPatternText(path: string, source: string): void {
  if (path.normalize('NFC') !== path) {
    throw new PatternError(`pattern "${source}" is not in Unicode NFC`, 'write it in NFC form');
  }
  // Control and format characters (bidi overrides, zero-width joiners) never belong in an id.
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(path)) {
    throw new PatternError(
      `pattern "${source}" contains a control or format character`,
      'remove it',
    );
  }
}

function compileSegments(path: string, separator: number, source: string): SegmentPattern {
  const separatorChar = String.fromCharCode(separator);
  const segments = path.split(separatorChar);
  const tokens: (string | null)[] = [];
  let literal: string[] = [];
  let tail = false;

  for (const [index, segment] of segments.entries()) {
    if (segment === '**') {
      if (index !== segments.length - 1) {
        throw new PatternError(
          `pattern "${source}" has ** before its last segment`,
          '** may only be the last segment; use * for one segment in the middle',
        );
      }
      tail = true;
      continue;
    }
    checkSegment(segment, source, separatorChar);
    if (segment === '*') {
      if (literal.length > 0) tokens.push(literal.join(separatorChar));
      literal = [];
      tokens.push(null);
    } else {
      literal.push(segment);
    }
  }
  if (literal.length > 0) tokens.push(literal.join(separatorChar));
  return { tokens, tail, separator, separatorText: separatorChar };
}

function checkSegment(segment: string, source: string, separator: string): void {
  if (segment === '') {
    throw new PatternError(
      `pattern "${source}" has an empty segment`,
      `remove the doubled, leading or trailing "${separator}"`,
    );
  }
  if (segment === '.' || segment === '..') {
    throw new PatternError(`pattern "${source}" has a "${segment}" segment`, 'remove it');
  }
  if (segment !== '*' && segment.includes('*')) {
    throw new PatternError(
      `pattern "${source}" has a wildcard inside the segment "${segment}"`,
      'a wildcard must be a whole segment: * for one segment, a trailing ** for one or more',
    );
  }
}

/**
 * Tests `path` against a compiled pattern without allocating. `path` must be a valid id (no
 * empty, `.` or `..` segments), which request validation guarantees.
 */
export function matchSegments(pattern: SegmentPattern, path: string): boolean {
  const { tokens, tail, separator, separatorText } = pattern;
  const length = path.length;
  let position = 0;

  for (let index = 0; index < tokens.length; index++) {
    if (index > 0) {
      if (path.charCodeAt(position) !== separator) return false;
      position++;
    }
    const token = tokens[index];
    if (token === null || token === undefined) {
      const next = path.indexOf(separatorText, position);
      const end = next === -1 ? length : next;
      if (end === position) return false;
      position = end;
    } else {
      if (!path.startsWith(token, position)) return false;
      position += token.length;
      if (position !== length && path.charCodeAt(position) !== separator) return false;
    }
  }

  if (!tail) return position === length;
  if (tokens.length === 0) return length > 0;
  return position + 1 < length && path.charCodeAt(position) === separator;
}

/** Tests a validated resource (its type and path) against a compiled pattern. */
export function matchResource(
  pattern: ResourcePattern,
  type: string,
  path: string,
  foldedPath: string,
): boolean {
  if (pattern.type === null) return true;
  if (pattern.type !== type) return false;
  return matchSegments(pattern.path, pattern.caseInsensitive ? foldedPath : path);
}

/** Tests a validated, lower-cased action against a compiled pattern. */
export function matchAction(pattern: ActionPattern, action: string): boolean {
  return pattern.any || matchSegments(pattern.path, action);
}
