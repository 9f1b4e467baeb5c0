/**
 * The example's analytics warehouse: a real PostgreSQL database, `acme_warehouse`, with a
 * dedicated login role for the agent that may only read the public tables.
 */
import { randomBytes } from 'node:crypto';

import pg from 'pg';

/** The server the example's warehouse lives on, as a superuser. */
export const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export const WAREHOUSE_DATABASE = 'acme_warehouse';
export const WAREHOUSE_ROLE = 'deputy_agent';

/** Outcome of the set-up: the agent's password, or why the warehouse is unavailable. */
export type WarehouseSetup = { ok: true; password: string } | { ok: false; reason: string };

const SCHEMA = `
CREATE SCHEMA IF NOT EXISTS finance;
CREATE TABLE IF NOT EXISTS public.customers (id int PRIMARY KEY, name text NOT NULL, country text NOT NULL);
CREATE TABLE IF NOT EXISTS public.orders (
  id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers, total numeric(10,2) NOT NULL,
  currency text NOT NULL, placed_at date NOT NULL);
CREATE TABLE IF NOT EXISTS finance.payroll (employee text PRIMARY KEY, salary numeric(10,2) NOT NULL);
INSERT INTO public.customers VALUES (1, 'Globex', 'US'), (2, 'Initech', 'US'), (3, 'Umbrella', 'GB')
  ON CONFLICT DO NOTHING;
INSERT INTO public.orders VALUES
  (1001, 1, 1200.00, 'USD', '2026-11-02'), (1002, 2, 310.50, 'USD', '2026-11-14'),
  (1003, 3, 980.00, 'GBP', '2026-11-20'), (1004, 1, 45.00, 'USD', '2026-12-01')
  ON CONFLICT DO NOTHING;
INSERT INTO finance.payroll VALUES ('alice', 150000), ('bob', 140000) ON CONFLICT DO NOTHING;
`;

// The agent's role reads the public tables and nothing else: no CREATE anywhere, no payroll.
const PRIVILEGES = `
REVOKE ALL ON DATABASE ${WAREHOUSE_DATABASE} FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE ${WAREHOUSE_DATABASE} TO ${WAREHOUSE_ROLE};
GRANT USAGE ON SCHEMA public TO ${WAREHOUSE_ROLE};
GRANT SELECT ON public.customers, public.orders TO ${WAREHOUSE_ROLE};
REVOKE ALL ON SCHEMA finance FROM ${WAREHOUSE_ROLE};
`;

/**
 * Creates the database, its sample data and the agent's role if they are missing, and returns
 * the role's password. A new role gets a random password, kept in a table only superusers
 * read, so later runs (and runs in parallel) log in with the same one. Safe to run from
 * several processes at once.
 */
export async function setUpWarehouse(
  adminUrl: string = DEFAULT_ADMIN_URL,
): Promise<WarehouseSetup> {
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (error) {
    return { ok: false, reason: `PostgreSQL is not reachable (${(error as Error).message})` };
  }
  try {
    // Concurrent set-ups (parallel test files) take turns.
    await admin.query('SELECT pg_advisory_lock(7420)');
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [
      WAREHOUSE_DATABASE,
    ]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${WAREHOUSE_DATABASE}`);
    const warehouse = new pg.Client({
      connectionString: withDatabase(adminUrl, WAREHOUSE_DATABASE),
    });
    await warehouse.connect();
    try {
      const password = await rolePassword(admin, warehouse);
      await warehouse.query(SCHEMA);
      await warehouse.query(PRIVILEGES);
      return { ok: true, password };
    } finally {
      await warehouse.end();
    }
  } catch (error) {
    return { ok: false, reason: `warehouse set-up failed (${(error as Error).message})` };
  } finally {
    await admin.query('SELECT pg_advisory_unlock(7420)').catch(() => undefined);
    await admin.end();
  }
}

/** Returns the agent role's password: the one stored by an earlier run, or a new one set now. */
async function rolePassword(admin: pg.Client, warehouse: pg.Client): Promise<string> {
  await warehouse.query(`
    CREATE SCHEMA IF NOT EXISTS example_admin;
    REVOKE ALL ON SCHEMA example_admin FROM PUBLIC;
    CREATE TABLE IF NOT EXISTS example_admin.role_passwords (
      role text PRIMARY KEY, password text NOT NULL);`);
  const kept = await warehouse.query<{ password: string }>(
    'SELECT password FROM example_admin.role_passwords WHERE role = $1',
    [WAREHOUSE_ROLE],
  );
  const role = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [WAREHOUSE_ROLE]);
  if (kept.rows[0] && role.rowCount === 1) return kept.rows[0].password;

  const password = randomBytes(18).toString('base64url');
  const verb = role.rowCount === 0 ? 'CREATE' : 'ALTER';
  const options = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE';
  await admin.query(`${verb} ROLE ${WAREHOUSE_ROLE} ${options} PASSWORD '${password}'`);
  await warehouse.query(
    `INSERT INTO example_admin.role_passwords VALUES ($1, $2)
     ON CONFLICT (role) DO UPDATE SET password = excluded.password`,
    [WAREHOUSE_ROLE, password],
  );
  return password;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
