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

/** The reason a request id is invalid. */
export class InvalidId {
  readonly message: string;

  constructor(message: string) {
    this.message = message;
  }
}

const HOST_NAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const PRINTABLE_ASCII = /^[\x21-\x7e]*$/;
const EDGE_WHITESPACE = /(^|\/)\s|\s($|\/)/u;
const NON_ASCII = /[^\x00-\x7f]/;
const NUMERIC_LABEL = /^(0x[0-9a-f]*|\d+)$/i;
const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Tests for a DNS name, or an IPv4 address in its one dotted-decimal spelling. */
function isCanonicalHost(host: string): boolean {
  if (!HOST_NAME.test(host)) return false;
  // A host whose last label is numeric is an IPv4 address to a URL parser (WHATWG URL).
  const last = host.slice(host.lastIndexOf('.') + 1);
  return !NUMERIC_LABEL.test(last) || DOTTED_QUAD.test(host);
}

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
    // A lone surrogate becomes U+FFFD in UTF-8, so two distinct ids would reach a system as one.
    if (!path.isWellFormed()) return 'contains a lone surrogate';
    if (UNSAFE_CHARACTER.test(path)) return 'contains a control or format character';
    if (path.normalize('NFC') !== path) return 'is not in Unicode NFC';
  }
  return null;
}

function isDotSegment(path: string, start: number, size: number): boolean {
  if (path.charCodeAt(start) !== DOT) return false;
  return size === 1 || path.charCodeAt(start + 1) === DOT;
}

/** Tests for a resource type: a lowercase letter, then lowercase letters, digits, `_` or `-`. */
function isTypeName(text: string, end: number): boolean {
  const first = text.charCodeAt(0);
  if (first < 0x61 || first > 0x7a) return false;
  for (let index = 1; index < end; index++) {
    const code = text.charCodeAt(index);
    const lower = code >= 0x61 && code <= 0x7a;
    const digit = code >= 0x30 && code <= 0x39;
    if (!lower && !digit && code !== 0x5f && code !== 0x2d) return false;
  }
  return true;
}

/** Parses `TYPE:PATH` into a ParsedResource, or returns why it is invalid. */
export function parseResource(
  resource: string,
  caseInsensitiveTypes: ReadonlySet<string>,
): ParsedResource | InvalidId {
  const colon = resource.indexOf(':');
  if (colon <= 0) return new InvalidId('resource must be TYPE:PATH');
  if (!isTypeName(resource, colon)) {
    return new InvalidId('resource type must be lowercase letters, digits, _ and -');
  }

  const type = resource.slice(0, colon);
  const path = resource.slice(colon + 1);
  const problem = checkPath(path);
  if (problem !== null) return new InvalidId(`resource path ${problem}`);

  // Only one spelling of a host is accepted: a URL parser maps fullwidth letters, a trailing
  // dot, an explicit port or a numeric IPv4 form (0x7f.1, 2130706433) onto a plain address,
  // which a guardrail must not miss.
  if (type === 'host' && !isCanonicalHost(path)) {
    return new InvalidId(
      'a host resource must be an ASCII DNS name or dotted-decimal IPv4 address, ' +
        'without a port or trailing dot',
    );
  }

  const caseInsensitive = caseInsensitiveTypes.has(type);
  // Folding is only safe on ASCII: other systems fold ſ, ı or fullwidth letters onto ASCII
  // names, and trim spaces, where toLowerCase does not.
  if (caseInsensitive && !PRINTABLE_ASCII.test(path)) {
    return new InvalidId(
      `ids of the case-insensitive type ${type} must be printable ASCII without spaces`,
    );
  }
  const mayHaveSpace = path.includes(' ') || NON_ASCII.test(path);
  if (!caseInsensitive && mayHaveSpace && EDGE_WHITESPACE.test(path)) {
    return new InvalidId('resource path has a segment that starts or ends with white space');
  }

  const foldedPath = caseInsensitive ? path.toLowerCase() : path;
  return { type, path, foldedPath };
}

/**
 * Validates an action and returns it lower-cased, or returns why it is invalid. Actions are
 * `.`-separated segments of ASCII letters, digits, `_` and `-`, compared without regard to
 * case, like HTTP method names.
 */
export function parseAction(action: string): string | InvalidId {
  const length = action.length;
  let segmentStart = 0;
  let upper = false;

  for (let index = 0; index <= length; index++) {
    const code = index === length ? DOT : action.charCodeAt(index);
    if (code === DOT) {
      if (index === segmentStart) return new InvalidId('action has an empty segment');
      segmentStart = index + 1;
      continue;
    }
    const lower = code >= 0x61 && code <= 0x7a;
    const capital = code >= 0x41 && code <= 0x5a;
    const digit = code >= 0x30 && code <= 0x39;
    if (!lower && !capital && !digit && code !== 0x5f && code !== 0x2d) {
      return new InvalidId('action must be .-separated segments of letters, digits, _ and -');
    }
    upper ||= capital;
  }
  return upper ? action.toLowerCase() : action;
}
