/**
 * Request paths of the egress proxy, compared segment by segment after percent-decoding and
 * resolving `.` and `..`. The normalised path is also the one sent upstream, so the path that
 * was checked is the path the upstream receives.
 */
import type { Route } from '../../model/policy.js';

/** A normalised path: decoded segments, and the path to send upstream. */
export interface NormalisedPath {
  readonly segments: readonly string[];
  /** Percent-encoded again, starting with `/`; a trailing `/` is kept. */
  readonly path: string;
}

/** An invalid request path, with the reason sent to the caller. */
export class PathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PathError';
  }
}

// CR, LF and NUL are rejected in every form. A backslash, an encoded slash and a semicolon are
// rejected too, because servers disagree on whether they separate segments or start path
// parameters (Tomcat and Spring strip `;…` from a segment).
const FORBIDDEN_RAW = /[\r\n\0\\;]/;
const FORBIDDEN_DECODED = /[\r\n\0/\\;]/;

/** Normalises the path of a request target (without the query). Throws a PathError. */
export function normalisePath(raw: string): NormalisedPath {
  if (!raw.startsWith('/')) throw new PathError('the path must start with /');
  if (FORBIDDEN_RAW.test(raw)) throw new PathError('the path contains CR, LF, NUL, \\ or ;');

  const parts = raw.slice(1).split('/');
  const trailingSlash = parts.length > 1 && parts[parts.length - 1] === '';
  const segments: string[] = [];
  for (const part of parts) {
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      throw new PathError('the path has an invalid percent-encoding');
    }
    if (FORBIDDEN_DECODED.test(segment)) {
      throw new PathError('a path segment encodes /, \\, ;, CR, LF or NUL');
    }
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw new PathError('the path climbs above /');
      segments.pop();
      continue;
    }
    segments.push(segment);
  }

  const encoded = segments.map(encodeSegment).join('/');
  const path = `/${encoded}${trailingSlash && segments.length > 0 ? '/' : ''}`;
  return { segments, path };
}

/** Percent-encodes a segment, leaving the characters RFC 3986 allows in a segment as they are. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%(24|26|2B|2C|3A|3D|40)/g, (escape) =>
    decodeURIComponent(escape),
  );
}

/** Tests whether `path` is `prefix` or lies under it. `/a/b` is under `/a`, `/ab` is not. */
export function isUnderPrefix(path: NormalisedPath, prefix: NormalisedPath): boolean {
  if (prefix.segments.length > path.segments.length) return false;
  return prefix.segments.every((segment, index) => path.segments[index] === segment);
}

/** The first route matching the method and path, and its resource with captures filled in. */
export function matchRoute(
  routes: readonly Route[],
  method: string,
  path: NormalisedPath,
): { route: Route; resource: string } | null {
  for (const route of routes) {
    if (!route.methods.some((entry) => entry === '*' || entry.toUpperCase() === method)) continue;
    const captures = matchPattern(normalisePath(route.path).segments, path.segments);
    if (captures === null) continue;
    const resource = route.resource.replace(
      /\{([A-Za-z_][A-Za-z0-9_]*)\}/g,
      (_, name: string) => captures.get(name) ?? '',
    );
    return { route, resource };
  }
  return null;
}

/**
 * Matches segments against a pattern: `{name}` captures one segment, `*` matches one, and a
 * final `**` matches the rest, possibly nothing. Other segments compare exactly.
 */
function matchPattern(
  pattern: readonly string[],
  segments: readonly string[],
): Map<string, string> | null {
  const captures = new Map<string, string>();
  for (let index = 0; index < pattern.length; index++) {
    const part = pattern[index]!;
    if (part === '**' && index === pattern.length - 1) return captures;
    const segment = segments[index];
    if (segment === undefined) return null;
    const name = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(part)?.[1];
    if (name !== undefined) captures.set(name, segment);
    else if (part !== '*' && part !== segment) return null;
  }
  return pattern.length === segments.length ? captures : null;
}
