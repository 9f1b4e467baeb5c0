/**
 * Revisions stored before a policy key existed load with that key's default, so an upgraded
 * Deputy reads its existing database.
 */
import { describe, expect, it } from 'vitest';

import { openDatabase } from '../../src/storage/database.js';
import { RevisionStore } from '../../src/storage/revisions.js';

/** A document as an earlier version stored it: no `prompts`, no connection `routes`. */
const OLD_DOCUMENT = {
  version: 1,
  workspace: { id: 'old', case_insensitive_types: ['repo', 'host', 'email'] },
  groups: [],
  members: [],
  agents: [{ id: 'helper', status: 'active', disabled_identities: [] }],
  connections: [
    {
      id: 'crm',
      kind: 'http',
      url: 'https://crm.example.com',
      hosts: ['crm.example.com'],
      resources: [],
      actions: [],
    },
  ],
  bundles: [{ id: 'baseline', grants: [], domains: [], tools: ['files/**'] }],
  scopes: {
    workspace: { bundles: [{ bundle: 'baseline' }], unattended: true },
    dms: { enabled: true, unattended: false },
    channels: [],
  },
  guardrails: [],
  audiences: [],
  federation: [],
};

describe('stored revisions', () => {
  it('load with the defaults of newer keys', async () => {
    const database = await openDatabase(':memory:');
    try {
      await database.db
        .insertInto('revisions')
        .values({
          workspace: 'old',
          revision: 1,
          document: JSON.stringify(OLD_DOCUMENT),
          actor: 'cli:test',
          summary: 'stored by an earlier version',
          created_at: new Date().toISOString(),
        })
        .execute();

      const current = await new RevisionStore(database.db).current('old');

      expect(current?.policy.bundles[0]!.prompts).toEqual([]);
      expect(current?.policy.connections[0]!.routes).toEqual([]);
      expect(current?.policy.connections[0]!.path_prefixes).toEqual(['/']);
      expect(current?.policy.connections[0]!.allow_addresses).toEqual([]);
    } finally {
      await database.close();
    }
  });
});
