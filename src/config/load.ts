/**
 * Loading `deputy.yaml`: YAML parsing, then policy validation, with every problem reported at
 * its file, line and column.
 */
import { readFile } from 'node:fs/promises';

import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';

import type { Policy } from '../model/policy.js';
import { formatIssuePath, type IssuePath, parsePolicy } from '../model/validate.js';

/** One located configuration problem. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Path in the document, such as `bundles[0].grants[1].resources[0]`. */
  readonly path: string;
  readonly message: string;
  readonly fix?: string;
}

/** Raised when a configuration file cannot be loaded; `issues` lists every problem found. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG_INVALID';
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatConfigIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Formats an issue as `file:line:column: path: message (fix: …)`. */
export function formatConfigIssue(issue: ConfigIssue): string {
  const fix = issue.fix === undefined ? '' : ` (fix: ${issue.fix})`;
  return `${issue.file}:${issue.line}:${issue.column}: ${issue.path}: ${issue.message}${fix}`;
}

/** Reads and validates a policy file. Throws `ConfigError` with every problem found. */
export async function loadPolicyFile(file: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([
      { file, line: 1, column: 1, path: '(file)', message: `cannot read the file (${reason})` },
    ]);
  }
  return parsePolicyText(text, file);
}

/** Parses and validates policy YAML text; `file` is used only in messages. */
export function parsePolicyText(text: string, file: string): Policy {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });

  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const position = lineCounter.linePos(error.pos[0]);
        return {
          file,
          line: position.line,
          column: position.col,
          path: '(yaml)',
          message: error.message.split('\n')[0] ?? 'invalid YAML',
          fix: 'correct the YAML syntax at this position',
        };
      }),
    );
  }

  let data: unknown;
  try {
    data = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // The YAML library refuses documents whose aliases expand too far (a "billion laughs").
    throw new ConfigError([
      {
        file,
        line: 1,
        column: 1,
        path: '(yaml)',
        message: error instanceof Error ? error.message : 'the YAML document cannot be expanded',
        fix: 'use fewer nested aliases',
      },
    ]);
  }
  const result = parsePolicy(data);
  if (result.ok) return result.policy;

  throw new ConfigError(
    result.issues.map((issue) => {
      const position = lineCounter.linePos(locate(document, issue.path, issue.atKey === true));
      return {
        file,
        line: position.line,
        column: position.col,
        path: formatIssuePath(issue.path),
        message: issue.message,
        ...(issue.fix === undefined ? {} : { fix: issue.fix }),
      };
    }),
  );
}

/**
 * Finds the source offset of a document path. A path that does not exist in the file (a
 * missing key) resolves to its nearest existing ancestor; an unknown key resolves to the key.
 */
function locate(document: Document, path: IssuePath, atKey: boolean): number {
  let node: unknown = document.contents;
  let offset = rangeStart(node) ?? 0;

  for (const [index, part] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isPair(item) && isScalar(item.key) && item.key.value === part,
      );
      if (!pair) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
      // An unknown key is reported at the key itself; any other issue at the value.
      if (!(atKey && index === path.length - 1)) offset = rangeStart(node) ?? offset;
      continue;
    }
    const items = (node as { items?: unknown[] } | null)?.items;
    if (typeof part !== 'number' || !Array.isArray(items) || items[part] === undefined) break;
    node = items[part];
    offset = rangeStart(node) ?? offset;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range?.[0];
}
