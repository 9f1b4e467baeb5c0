/**
 * Validation of the action and resource named in a request. A request that fails here is
 * denied with `invalid_request` before any rule is looked at, so that no odd spelling of an id
 * can match a grant while slipping past a guardrail.
 */

/** A resource split into its type and path, with the path lower-cased for case-insensitive types. */
export interface ParsedResource {
  readonly type: string;
  readonly path: string;
  readonly foldedPath: string;
}

const TYPE_PATTERN = /^[a-z][a-z0-9_-]*$/;
const UNSAFE_CHARACTER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const SLASH = 0x2f;
const DOT = 0x2e;
const STAR = 0x2a;

/**
 * Checks a `/`-separated path: no empty, `.` or `..` segment, no `*`, no control or format
 * character, and Unicode NFC. Returns an explanation, or `null` when the path is valid.
 */
export function checkPath(path: string, separator: number = SLASH): string | null {
  const length = path.length;
  if (length === 0) return 'is empty';

  let ascii = true;
  let segmentStart = 0;
  for (let index = 0; index <= length; index++) {
    const code = index === length ? separator : path.charCodeAt(index);
    if (code === separator) {
      const size = index - segmentStart;
      if (size === 0) return 'has an empty segment';
      if (size <= 2 && isDotSegment(path, segmentStart, size)) return 'has a . or .. segment';
      segmentStart = index + 1;
    } else if (code < 0x20 || code === 0x7f) {
      return 'contains a control character';
    } else if (code === STAR) {
      return 'contains *, which is reserved for patterns';
    } else if (code > 0x7f) {
      ascii = false;
    }
  }

  // ASCII text is always NFC; only other text needs the slower checks.
  if (!ascii) {
    if (UNSAFE_CHARACTER.test(path)) return 'contains a control or format character';
    if (path.normalize('NFC') !== path) return 'is not in Unicode NFC';
  }
  return null;
}

function isDotSegment(path: string, start: number, size: number): boolean {
  if (path.charCodeAt(start) !== DOT) return false;
  return size === 1 || path.charCodeAt(start + 1) === DOT;
}

/**
 * Parses `TYPE:PATH`. Returns the parsed resource, or a string explaining why it is invalid.
 */
export function parseResource(
  resource: string,
  caseInsensitiveTypes: ReadonlySet<string>,
): ParsedResource | string {
  const colon = resource.indexOf(':');
  if (colon <= 0) return 'resource must be TYPE:PATH';

  const type = resource.slice(0, colon);
  if (!TYPE_PATTERN.test(type)) return `resource type "${type}" is invalid`;

  const path = resource.slice(colon + 1);
  const problem = checkPath(path);
  if (problem !== null) return `resource path ${problem}`;

  const foldedPath = caseInsensitiveTypes.has(type) ? path.toLowerCase() : path;
  return { type, path, foldedPath };
}

const ACTION_CHARACTER = /^[A-Za-z0-9_.-]+$/;

/**
 * Validates an action and returns it lower-cased, or a string explaining why it is invalid.
 * Actions are ASCII and compared without regard to case, like HTTP method names.
 */
export function parseAction(action: string): { action: string } | string {
  if (!ACTION_CHARACTER.test(action)) {
    return 'action must be .-separated segments of letters, digits, _ and -';
  }
  const problem = checkPath(action, DOT);
  if (problem !== null) return `action ${problem}`;
  return { action: action.toLowerCase() };
}
