/**
 * The example workspace running for real: Deputy on embedded SQLite with its gateway, the
 * upstream MCP servers of the policy, the CRM on loopback and the warehouse in PostgreSQL.
 * `npm start`, `npm run demo` and the end-to-end tests all start it through here.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Logger } from 'pino';

import { buildServer } from '../../src/api/server.js';
import { loadPolicyFile } from '../../src/config/load.js';
import { Deputy } from '../../src/deputy.js';
import { diffPolicies } from '../../src/engine/diff.js';
import type { Gateway } from '../../src/gateway/gateway.js';
import { isMcpConnection } from '../../src/gateway/upstreams.js';
import { keepDisabled } from '../../src/kill-switch.js';
import type { Policy } from '../../src/model/policy.js';
import { type CrmService, startCrm } from './crm.js';
import { setUpWarehouse, type WarehouseSetup } from './warehouse.js';

/**
 * The repository root: policy paths such as `node_modules/…` are relative to it. This module
 * runs from examples/acme in tests and from dist/examples/acme when built.
 */
export const REPOSITORY_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const POLICY_FILE = join(REPOSITORY_ROOT, 'examples/acme/deputy.yaml');

export interface AcmeOptions {
  /** Directory of the SQLite database, master key and memory compartments. */
  dataDir: string;
  logger: Logger;
  /** Deputy's port; 0 picks a free one. @default 7420 */
  port?: number;
  /** The CRM's port; 0 picks a free one. @default 7432 */
  crmPort?: number;
  /** Superuser URL of the PostgreSQL server for the warehouse. */
  warehouseAdminUrl?: string;
  /** Master key (base64) instead of the key file in dataDir. */
  masterKey?: string;
  /** Directory the files connection serves instead of examples/acme/files. */
  filesDir?: string;
}

export interface AcmeEnvironment {
  readonly deputy: Deputy;
  readonly gateway: Gateway;
  /** Deputy's base URL, also its OAuth issuer. */
  readonly url: string;
  readonly mcpUrl: string;
  readonly crm: CrmService;
  readonly warehouse: WarehouseSetup;
  /** An admin API key created for this run. */
  readonly adminKey: string;
  /** A runtime client of agent `helper`, registered for this run. */
  readonly client: { id: string; secret: string };
  readonly policy: Policy;
  close(): Promise<void>;
}

export async function startAcme(options: AcmeOptions): Promise<AcmeEnvironment> {
  const { logger } = options;
  const crmKey = randomBytes(18).toString('base64url');
  const [crm, warehouse] = await Promise.all([
    startCrm(crmKey, options.crmPort ?? 7432),
    setUpWarehouse(options.warehouseAdminUrl),
  ]);
  if (!warehouse.ok) logger.warn({ reason: warehouse.reason }, 'warehouse unavailable');

  const env: Record<string, string | undefined> = {
    ...process.env,
    ACME_WAREHOUSE_PASSWORD: warehouse.ok ? warehouse.password : undefined,
  };
  const deputy = await Deputy.open({
    database: join(options.dataDir, 'deputy.db'),
    dataDir: options.dataDir,
    logger,
    env: options.masterKey ? { DEPUTY_MASTER_KEY: options.masterKey } : process.env,
  });

  try {
    const policy = await applyExample(deputy, crm, logger, options.filesDir);
    await deputy.audit.append({
      type: 'secret.set',
      workspace: 'acme',
      actor: EXAMPLE_CALL.actor,
      connection: 'crm',
    });
    await deputy.secrets.put('acme', 'crm', crmKey);
    const port = options.port === 0 ? await freePort() : (options.port ?? 7420);
    const url = `http://127.0.0.1:${port}`;
    const app = await buildServer({
      deputy,
      logger,
      publicUrl: url,
      gateway: { compartmentDir: join(options.dataDir, 'compartments'), env },
    });
    await app.listen({ host: '127.0.0.1', port });
    const gateway = (app as unknown as { gateway: Gateway }).gateway;
    await startSharedUpstreams(gateway, policy, logger);

    const call = EXAMPLE_CALL;
    await revokeEarlierRuns(deputy);
    const admin = await deputy.createKey('admin', EXAMPLE_LABEL, call);
    const created = await deputy.createClient(
      {
        workspace: 'acme',
        agent: 'helper',
        authMethod: 'client_secret_basic',
        label: EXAMPLE_LABEL,
      },
      call,
    );
    return {
      deputy,
      gateway,
      url,
      mcpUrl: `${url}/mcp`,
      crm,
      warehouse,
      adminKey: admin.key,
      client: { id: created.client.clientId, secret: created.secret! },
      policy,
      async close() {
        await app.close();
        await deputy.close();
        await crm.close();
      },
    };
  } catch (error) {
    await deputy.close();
    await crm.close();
    throw error;
  }
}

const EXAMPLE_CALL = { actor: { type: 'cli' as const, id: 'acme-example' }, requestId: null };

/** Label of the admin key and runtime client each run creates. */
const EXAMPLE_LABEL = 'acme example';

/** Revokes the admin key and disables the runtime client that an earlier run created. */
async function revokeEarlierRuns(deputy: Deputy): Promise<void> {
  for (const key of await deputy.keys.list()) {
    if (key.label === EXAMPLE_LABEL && key.revokedAt === null) {
      await deputy.revokeKey(key.id, EXAMPLE_CALL);
    }
  }
  for (const client of deputy.clients.list('acme')) {
    if (client.label === EXAMPLE_LABEL && client.disabledAt === null) {
      await deputy.disableClient(client.clientId, EXAMPLE_CALL);
    }
  }
}

/** Applies the example policy, pointed at this run's CRM port, as `deputy serve` would. */
async function applyExample(
  deputy: Deputy,
  crm: CrmService,
  logger: Logger,
  filesDir: string | undefined,
): Promise<Policy> {
  const fromFile = await loadPolicyFile(POLICY_FILE);
  const connection = fromFile.connections.find((entry) => entry.id === 'crm')!;
  connection.url = `http://127.0.0.1:${crm.port}`;
  connection.hosts = [`127.0.0.1:${crm.port}`];
  const files = fromFile.connections.find((entry) => entry.id === 'files')!;
  files.command = [...files.command!.slice(0, -1), filesDir ?? files.command!.at(-1)!];

  const current = await deputy.revisions.current(fromFile.workspace.id);
  const { policy } = current ? keepDisabled(current.policy, fromFile) : { policy: fromFile };
  if (!current || !diffPolicies(current.policy, policy).unchanged) {
    await deputy.apply(policy, current?.revision ?? 0, 'acme example', EXAMPLE_CALL);
  }
  logger.debug({ workspace: policy.workspace.id }, 'example policy applied');
  return (await deputy.revisions.current(policy.workspace.id))!.policy;
}

/** Starts the upstreams that are shared by every compartment, so the first call is quick. */
async function startSharedUpstreams(gateway: Gateway, policy: Policy, logger: Logger) {
  await Promise.all(
    policy.connections
      .filter((connection) => isMcpConnection(connection) && !connection.compartments)
      .map((connection) =>
        gateway.upstreams.get(policy.workspace.id, connection, '').catch((error: Error) => {
          logger.warn(
            { connection: connection.id, err: error },
            'upstream MCP server did not start',
          );
        }),
      ),
  );
}

function findRoot(start: string): string {
  for (let directory = start; ; directory = dirname(directory)) {
    if (existsSync(join(directory, 'package.json')) && existsSync(join(directory, 'examples'))) {
      return directory;
    }
    if (dirname(directory) === directory) throw new Error(`no repository root above ${start}`);
  }
}

async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolvePort(port));
    });
  });
}
