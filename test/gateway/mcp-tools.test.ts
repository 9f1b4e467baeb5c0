/**
 * Tools through the gateway: which ones each channel lists on both protocol revisions, which
 * calls are forwarded and which are denied, and the memory compartments behind the memory
 * connection.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  compartmentOf,
  connect,
  DENIED,
  type GatewayCaller,
  type GatewayTestEnvironment,
  rejectionOf,
  startGatewayEnvironment,
} from './support.js';

const FILES_TOOLS = [
  'read_file',
  'read_text_file',
  'read_media_file',
  'read_multiple_files',
  'write_file',
  'edit_file',
  'create_directory',
  'list_directory',
  'list_directory_with_sizes',
  'directory_tree',
  'move_file',
  'search_files',
  'get_file_info',
  'list_allowed_directories',
].map((tool) => `files__${tool}`);

/** The files tools of the baseline bundle, in the order the filesystem server lists them. */
const BASELINE_FILES_TOOLS = [
  'files__read_text_file',
  'files__list_directory',
  'files__search_files',
];

/** The memory server's tools without the delete_* ones that guardrail no-memory-deletes forbids. */
const MEMORY_TOOLS = [
  'create_entities',
  'create_relations',
  'add_observations',
  'read_graph',
  'search_nodes',
  'open_nodes',
].map((tool) => `memory__${tool}`);

const REVISIONS = [
  { revision: 'legacy', version: '2025-11-25' },
  { revision: 'modern', version: '2026-07-28' },
] as const;

let environment: GatewayTestEnvironment;

beforeAll(async () => {
  environment = await startGatewayEnvironment();
});

afterAll(async () => {
  await environment?.close();
});

async function toolNames(client: Client): Promise<string[]> {
  return (await client.listTools()).tools.map((tool) => tool.name);
}

async function entityNames(client: Client): Promise<string[]> {
  const result = await client.callTool({ name: 'memory__read_graph', arguments: {} });
  const graph = JSON.parse((result.content as Array<{ text: string }>)[0]!.text) as {
    entities: Array<{ name: string }>;
  };
  return graph.entities.map((entity) => entity.name);
}

async function createEntity(client: Client, name: string): Promise<void> {
  const result = await client.callTool({
    name: 'memory__create_entities',
    arguments: { entities: [{ name, entityType: 'note', observations: [`written as ${name}`] }] },
  });
  expect(result.isError).toBeUndefined();
}

describe('upstream memory server', () => {
  it('lists the tools the guardrail hides', async () => {
    const memory = environment.acme.policy.connections.find((entry) => entry.id === 'memory')!;
    const shared = compartmentOf({ agent: 'helper', identity: 'agent:helper' } as GatewayCaller);
    const upstream = await environment.acme.gateway.upstreams.get('acme', memory, shared);

    expect(upstream.tools.map((tool) => `memory__${tool.name}`)).toEqual([
      'memory__create_entities',
      'memory__create_relations',
      'memory__add_observations',
      'memory__delete_entities',
      'memory__delete_observations',
      'memory__delete_relations',
      'memory__read_graph',
      'memory__search_nodes',
      'memory__open_nodes',
    ]);
  });
});

describe.each(REVISIONS)('tools/list on $version', ({ revision, version }) => {
  it('lists baseline tools in C01GENERAL', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' }, revision);

    expect(client.getNegotiatedProtocolVersion()).toBe(version);
    expect(await toolNames(client)).toEqual([...BASELINE_FILES_TOOLS, ...MEMORY_TOOLS]);
  });

  it('lists every files tool in C02ENG', async () => {
    const client = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' }, revision);

    expect(client.getNegotiatedProtocolVersion()).toBe(version);
    expect(await toolNames(client)).toEqual([...FILES_TOOLS, ...MEMORY_TOOLS]);
  });

  it('adds warehouse__query in C03DATA', async (context) => {
    if (!environment.acme.warehouse.ok) {
      context.skip(`the warehouse is unavailable: ${environment.acme.warehouse.reason}`);
    }
    const client = await connect(environment, { channel: 'C03DATA' }, revision);

    expect(client.getNegotiatedProtocolVersion()).toBe(version);
    expect(await toolNames(client)).toEqual([
      'warehouse__query',
      ...BASELINE_FILES_TOOLS,
      ...MEMORY_TOOLS,
    ]);
  });
});

describe('tools/call decisions', () => {
  it('writes a file in C02ENG', async () => {
    const client = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });
    const path = join(environment.filesDir, 'standup.md');

    const result = await client.callTool({
      name: 'files__write_file',
      arguments: { path, content: 'Standup moved to 10:00.\n' },
    });

    expect(result.isError).toBeUndefined();
    expect(result.content).toEqual([{ type: 'text', text: `Successfully wrote to ${path}` }]);
    expect(readFileSync(path, 'utf8')).toBe('Standup moved to 10:00.\n');
  });

  it('denies write_file in C01GENERAL', async () => {
    const client = await connect(environment, { channel: 'C01GENERAL' });
    const path = join(environment.filesDir, 'general.md');

    const error = await rejectionOf(
      client.callTool({ name: 'files__write_file', arguments: { path, content: 'no' } }),
    );

    expect(error.code).toBe(DENIED);
    expect(error.message).toBe('Deputy denied files__write_file: no_matching_grant');
    expect(error.data).toEqual({ reason: 'no_matching_grant', decision_id: expect.any(String) });
    expect(existsSync(path)).toBe(false);
  });

  it('denies memory deletes by guardrail', async () => {
    const client = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });
    await createEntity(client, 'guardrail-kept');

    const error = await rejectionOf(
      client.callTool({
        name: 'memory__delete_entities',
        arguments: { entityNames: ['guardrail-kept'] },
      }),
    );

    expect(error.code).toBe(DENIED);
    expect(error.message).toBe(
      'Deputy denied memory__delete_entities: forbidden_by_guardrail (guardrail no-memory-deletes)',
    );
    expect(error.data).toEqual({
      reason: 'forbidden_by_guardrail',
      decision_id: expect.any(String),
      guardrail: 'no-memory-deletes',
    });
    expect(await entityNames(client)).toContain('guardrail-kept');
  });

  // The gateway reports an unknown tool as a tool error, so a model can correct the name.
  it('reports an unknown tool as a tool error', async () => {
    const client = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });

    for (const name of ['files__no_such_tool', 'github__get_repository', 'write_file']) {
      const result = await client.callTool({ name, arguments: {} });

      expect(result.isError).toBe(true);
      expect(result.content).toEqual([{ type: 'text', text: `Unknown tool: ${name}` }]);
    }
  });
});

describe('memory compartments', () => {
  it('keeps a private channel apart', async () => {
    const legal = await connect(environment, { channel: 'C04LEGAL', invoker: 'U03CAROL' });
    const general = await connect(environment, { channel: 'C01GENERAL' });
    const dm = await connect(environment, { channel: 'dm:U01ALICE', invoker: 'U01ALICE' });

    await createEntity(legal, 'legal-contract-review');

    expect(await entityNames(legal)).toContain('legal-contract-review');
    expect(await entityNames(general)).not.toContain('legal-contract-review');
    expect(await entityNames(dm)).not.toContain('legal-contract-review');
  });

  it('keeps a DM apart', async () => {
    const alice = await connect(environment, { channel: 'dm:U01ALICE', invoker: 'U01ALICE' });
    const bob = await connect(environment, { channel: 'dm:U02BOB', invoker: 'U02BOB' });
    const legal = await connect(environment, { channel: 'C04LEGAL', invoker: 'U03CAROL' });
    const general = await connect(environment, { channel: 'C01GENERAL' });

    await createEntity(alice, 'alice-dm-reminder');

    expect(await entityNames(alice)).toContain('alice-dm-reminder');
    expect(await entityNames(bob)).not.toContain('alice-dm-reminder');
    expect(await entityNames(legal)).not.toContain('alice-dm-reminder');
    expect(await entityNames(general)).not.toContain('alice-dm-reminder');
  });

  it('shares one store across public scopes', async () => {
    const general = await connect(environment, { channel: 'C01GENERAL' });
    const workspace = await connect(environment, {});
    const data = await connect(environment, { channel: 'C03DATA' });
    const engineering = await connect(environment, { channel: 'C02ENG', invoker: 'U02BOB' });

    await createEntity(general, 'general-offsite-plan');

    expect(await entityNames(workspace)).toContain('general-offsite-plan');
    expect(await entityNames(data)).toContain('general-offsite-plan');
    expect(await entityNames(engineering)).toContain('general-offsite-plan');
  });

  it('stores each compartment in its own directory', async () => {
    const legal = await connect(environment, { channel: 'C04LEGAL', invoker: 'U03CAROL' });
    const dm = await connect(environment, { channel: 'dm:U01ALICE', invoker: 'U01ALICE' });
    const general = await connect(environment, { channel: 'C01GENERAL' });
    await createEntity(legal, 'legal-directory-check');
    await createEntity(dm, 'dm-directory-check');
    await createEntity(general, 'general-directory-check');

    const directoryOf = (identity: string) =>
      environment.acme.gateway.upstreams.compartmentDirectory(
        'acme',
        'memory',
        compartmentOf({ agent: 'helper', identity } as GatewayCaller),
      );
    const directories = {
      legal: directoryOf('agent:helper/channel:C04LEGAL'),
      dm: directoryOf('member:U01ALICE'),
      shared: directoryOf('agent:helper'),
    };
    const stored = (directory: string) => readFileSync(join(directory, 'memory.jsonl'), 'utf8');

    expect(new Set(Object.values(directories)).size).toBe(3);
    expect(stored(directories.legal)).toContain('legal-directory-check');
    expect(stored(directories.legal)).not.toContain('dm-directory-check');
    expect(stored(directories.legal)).not.toContain('general-directory-check');
    expect(stored(directories.dm)).toContain('dm-directory-check');
    expect(stored(directories.dm)).not.toContain('legal-directory-check');
    expect(stored(directories.dm)).not.toContain('general-directory-check');
    expect(stored(directories.shared)).toContain('general-directory-check');
    expect(stored(directories.shared)).not.toContain('legal-directory-check');
    expect(stored(directories.shared)).not.toContain('dm-directory-check');
  });
});
