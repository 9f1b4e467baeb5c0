/** Checks of the connection keys the gateway uses: MCP servers, credentials and routes. */
import { InvalidId, parseAction, parseResource } from './ids.js';
import type { Connection } from './policy.js';

type Add = (path: Array<string | number>, message: string, fix?: string) => void;

const METHOD = /^[A-Z]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Reports problems of one connection's gateway keys through `add`. */
export function checkGatewayKeys(
  connection: Connection,
  at: Array<string | number>,
  caseInsensitive: ReadonlySet<string>,
  add: Add,
): void {
  if (
    connection.kind === 'mcp' &&
    (connection.command === undefined) === (connection.url === undefined)
  ) {
    add(
      at,
      'an mcp connection needs exactly one of command and url',
      'write command: [executable, args…] for a stdio server, or url: for a Streamable HTTP server',
    );
  }
  if (connection.kind === 'mcp' && connection.id.includes('__')) {
    add(
      [...at, 'id'],
      `mcp connection id "${connection.id}" contains __`,
      'tool names are <connection>__<tool>, so use a single _ or -',
    );
  }
  checkCompartments(connection, at, add);
  if (connection.kind !== 'mcp') {
    for (const key of ['command', 'compartments'] as const) {
      if (key === 'command' ? connection.command !== undefined : connection.compartments) {
        add(
          [...at, key],
          `${key} applies to mcp connections only`,
          'set kind: mcp or remove the key',
        );
      }
    }
  }

  const credential = connection.credential;
  if (credential?.scheme === 'env') {
    if (connection.command === undefined) {
      add(
        [...at, 'credential', 'scheme'],
        'scheme env is for stdio MCP servers only',
        'set command, or use bearer, basic, header, query or body',
      );
    }
    if (credential.name === undefined || !ENV_NAME.test(credential.name)) {
      add(
        [...at, 'credential', 'name'],
        'scheme env needs name: the environment variable to set',
        'write for example name: GITHUB_TOKEN',
      );
    }
  }

  connection.methods?.forEach((method, index) => {
    if (!METHOD.test(method))
      add(
        [...at, 'methods', index],
        `method "${method}" is invalid`,
        'write an uppercase HTTP method such as GET',
      );
  });
  connection.path_prefixes.forEach((prefix, index) => {
    if (!prefix.startsWith('/'))
      add([...at, 'path_prefixes', index], `path prefix "${prefix}" must start with /`);
  });
  connection.routes.forEach((route, index) =>
    checkRoute(route, [...at, 'routes', index], caseInsensitive, add),
  );
}

function checkRoute(
  route: Connection['routes'][number],
  at: Array<string | number>,
  caseInsensitive: ReadonlySet<string>,
  add: Add,
): void {
  route.methods.forEach((method, index) => {
    if (method !== '*' && !METHOD.test(method)) {
      add(
        [...at, 'methods', index],
        `method "${method}" is invalid`,
        'write an uppercase HTTP method such as GET, or *',
      );
    }
  });
  if (!route.path.startsWith('/'))
    add([...at, 'path'], `route path "${route.path}" must start with /`);
  const segments = route.path.split('/').slice(1);
  if (segments.slice(0, -1).includes('**')) {
    add([...at, 'path'], '** may only be the last segment of a route path');
  }

  const captured = new Set([...route.path.matchAll(PLACEHOLDER)].map((match) => match[1]!));
  for (const [, name] of route.resource.matchAll(PLACEHOLDER)) {
    if (!captured.has(name!)) {
      add(
        [...at, 'resource'],
        `{${name}} is not captured by the route path`,
        `capture it in path, for example /items/{${name}}`,
      );
    }
  }
  const sample = parseResource(route.resource.replace(PLACEHOLDER, 'x'), caseInsensitive);
  if (sample instanceof InvalidId)
    add([...at, 'resource'], `${sample.message}: "${route.resource}"`);
  const action = parseAction(route.action);
  if (action instanceof InvalidId) add([...at, 'action'], `${action.message}: "${route.action}"`);
}

/**
 * A memory store per compartment needs both keys: `compartments: true` starts a process per
 * compartment, and `{compartment}` in `env` or `command` gives each its own files. Either one
 * alone makes compartments share a store.
 */
function checkCompartments(connection: Connection, at: Array<string | number>, add: Add): void {
  const placeholder = [...Object.values(connection.env), ...(connection.command ?? [])].some(
    (value) => value.includes('{compartment}'),
  );
  if (placeholder && !connection.compartments) {
    add(
      [...at, 'compartments'],
      '{compartment} is used but compartments is not true, so every compartment would share one store',
      'set compartments: true',
    );
  }
  if (connection.compartments && !placeholder) {
    add(
      [...at, 'env'],
      'compartments: true needs {compartment} in env or command, or every compartment process would use the same store',
      'write for example MEMORY_FILE_PATH: "{compartment}/memory.jsonl"',
    );
  }
  if (connection.compartments && connection.command === undefined) {
    add([...at, 'compartments'], 'compartments applies to stdio MCP servers (command) only');
  }
}
