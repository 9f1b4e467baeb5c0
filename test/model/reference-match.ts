/**
 * A deliberately naive pattern matcher that the property tests compare the compiled matcher
 * against. It splits both sides into segments and matches them recursively, so it shares no
 * code or shortcuts with `src/model/patterns.ts`.
 */

/** Matches `*` to one whole segment and a final `**` to one or more segments. */
export function referenceMatchSegments(pattern: string, path: string, separator: string): boolean {
  if (pattern === '**') return path.length > 0;
  return matchList(pattern.split(separator), path.split(separator));
}

function matchList(pattern: readonly string[], path: readonly string[]): boolean {
  if (pattern.length === 0) return path.length === 0;

  const [head, ...rest] = pattern;
  if (head === '**' && rest.length === 0) return path.length >= 1;
  if (path.length === 0) return false;
  if (head !== '*' && head !== path[0]) return false;
  return matchList(rest, path.slice(1));
}

/** Matches a resource id `TYPE:PATH` against a resource pattern, folding case-insensitive types. */
export function referenceMatchResource(
  pattern: string,
  resource: string,
  caseInsensitiveTypes: ReadonlySet<string>,
): boolean {
  if (pattern === '**') return true;

  const [patternType, patternPath] = splitType(pattern);
  const [type, path] = splitType(resource);
  if (patternType !== type) return false;

  if (caseInsensitiveTypes.has(type)) {
    return referenceMatchSegments(patternPath.toLowerCase(), path.toLowerCase(), '/');
  }
  return referenceMatchSegments(patternPath, path, '/');
}

/** Matches an action against an action pattern; both compare lower-cased. */
export function referenceMatchAction(pattern: string, action: string): boolean {
  if (pattern === '**') return true;
  return referenceMatchSegments(pattern.toLowerCase(), action.toLowerCase(), '.');
}

function splitType(id: string): [string, string] {
  const colon = id.indexOf(':');
  return [id.slice(0, colon), id.slice(colon + 1)];
}
