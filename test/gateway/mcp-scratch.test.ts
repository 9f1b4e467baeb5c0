import { afterAll, beforeAll, it } from 'vitest';
import { connect, type GatewayTestEnvironment, startGatewayEnvironment } from './support.js';
let environment: GatewayTestEnvironment;
beforeAll(async () => { environment = await startGatewayEnvironment(); });
afterAll(async () => { await environment?.close(); });
it('scratch', async () => {
  const client = await connect(environment, { channel: 'C02ENG', invoker: 'U01ALICE' });
  for (const name of ['files__no_such_tool', 'github__get_repository', 'write_file', 'files__', 'memory__delete_everything']) {
    try { console.log(name, JSON.stringify(await client.callTool({ name, arguments: {} }))); } catch (e) { console.log(name, 'ERR', (e as any).code, (e as Error).message); }
  }
});
