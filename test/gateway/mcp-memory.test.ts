/**
 * Concurrent calls to a memory server. The server rewrites one file per call, so the example
 * limits its connection to one call in flight; every concurrent write must survive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  connect,
  type GatewayTestEnvironment,
  startGatewayEnvironment,
  textOf,
} from './support.js';

let environment: GatewayTestEnvironment;

beforeAll(async () => {
  environment = await startGatewayEnvironment();
});

afterAll(async () => {
  await environment?.close();
});

describe('memory under concurrency', () => {
  it('keeps all of 20 parallel writes', async () => {
    const client = await connect(environment, { channel: 'dm:U02BOB', invoker: 'U02BOB' });
    const names = Array.from({ length: 20 }, (_, index) => `note-${index}`);

    await Promise.all(
      names.map((name) =>
        client.callTool({
          name: 'memory__create_entities',
          arguments: { entities: [{ name, entityType: 'note', observations: ['parallel'] }] },
        }),
      ),
    );
    const graph = JSON.parse(
      textOf(await client.callTool({ name: 'memory__read_graph', arguments: {} })),
    );
    await client.close();

    expect(graph.entities.map((entity: { name: string }) => entity.name).sort()).toEqual(
      [...names].sort(),
    );
  });
});
