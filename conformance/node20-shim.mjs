// Node 20 has no fs.globSync (added in Node 22), yet @modelcontextprotocol/conformance 0.1.16
// imports it by name, so its CLI fails to load. Use: node --import ./conformance/node20-shim.mjs
//
// A --require preload cannot add the export, because Node fixes a builtin module's named exports
// when it first loads it. This resolve hook gives the conformance package a copy of `fs` instead.
import fs from 'node:fs';
import { register } from 'node:module';

const HOOKS_QUERY = '?hooks';

// `fs` plus a globSync stub. Of the conformance CLI's commands only `tier-check` calls globSync.
const FS_WITH_GLOB_STUB = [
  "import fs from 'node:fs';",
  "export * from 'node:fs';",
  'export default fs;',
  'export function globSync() {',
  "  throw new Error('fs.globSync is missing in Node 20 and conformance/node20-shim.mjs ' +",
  "    'only stubs it. Run this command on Node 22 or later.');",
  '}',
].join('\n');

const FS_WITH_GLOB_STUB_URL = `data:text/javascript,${encodeURIComponent(FS_WITH_GLOB_STUB)}`;

// Node loads this file a second time, with HOOKS_QUERY, as the hooks module in its loader thread.
if (typeof fs.globSync !== 'function' && !import.meta.url.endsWith(HOOKS_QUERY)) {
  register(`${import.meta.url}${HOOKS_QUERY}`);
}

/** Redirects the conformance package's `fs` imports to FS_WITH_GLOB_STUB. */
export async function resolve(specifier, context, nextResolve) {
  const isFs = specifier === 'fs' || specifier === 'node:fs';
  if (isFs && context.parentURL?.includes('/@modelcontextprotocol/conformance/')) {
    return { url: FS_WITH_GLOB_STUB_URL, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
