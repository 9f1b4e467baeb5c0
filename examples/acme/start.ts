/**
 * `npm start`: runs the example workspace with its upstreams on this machine and prints where
 * everything is. Data stays in ./.deputy (or DEPUTY_DATA_DIR) between runs.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

import pino from 'pino';

import { startAcme } from './environment.js';

const dataDir = resolve(process.env.DEPUTY_DATA_DIR ?? '.deputy');
mkdirSync(dataDir, { recursive: true, mode: 0o700 });
const logger = pino({ level: process.env.DEPUTY_LOG_LEVEL ?? 'warn' });

const environment = await startAcme({
  dataDir,
  logger,
  port: Number(process.env.DEPUTY_PORT ?? 7420),
  crmPort: Number(process.env.ACME_CRM_PORT ?? 7432),
});
const { url, warehouse } = environment;
const connections = environment.policy.connections.map((connection) => connection.id).join(', ');

const lines = [
  `Deputy is running the example workspace "acme" (${connections}).`,
  '',
  `  HTTP API and OAuth issuer  ${url}`,
  `  MCP gateway                ${url}/mcp`,
  `  Resource metadata          ${environment.gateway.resourceMetadataUrl}`,
  `  HTTP egress proxy          ${url}/proxy/<connection>/<path>, or ${url} as an HTTP proxy`,
  `  Example CRM                ${environment.crm.url}`,
  warehouse.ok
    ? '  Warehouse                  postgres://127.0.0.1:5432/acme_warehouse, role deputy_agent (read only)'
    : `  Warehouse                  unavailable: ${warehouse.reason}`,
  `  Database                   ${join(dataDir, 'deputy.db')} (SQLite)`,
  '',
  'Created for this run, shown once:',
  `  Admin API key              ${environment.adminKey}`,
  `  Runtime client of helper   client_id=${environment.client.id}`,
  `                             client_secret=${environment.client.secret}`,
  '',
  'npm run demo plays an agent runtime against a copy of its own. Press Ctrl-C to stop.',
];
process.stdout.write(`${lines.join('\n')}\n`);

const stop = async () => {
  await environment.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
