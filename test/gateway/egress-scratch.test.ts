import { afterAll, beforeAll, it } from 'vitest';
import { type EgressEnvironment, json, lookedUp, proxyToken, refused, send, sendBytes, startEgressEnvironment } from './egress-support.js';

let env: EgressEnvironment;
beforeAll(async () => { env = await startEgressEnvironment(); });
afterAll(async () => { await env?.close(); });

it('explores', async () => {
  const t0 = Date.now();
  const token = await proxyToken(env, { channel: 'C05SALES', invoker: 'U04DAVE' });
  const show = async (label: string, r: Parameters<typeof send>[1]) => {
    const before = env.acme.crm.received.length;
    const res = await send(env.port, r);
    console.log(label, res.status, res.text.slice(0, 200), 'crm got', env.acme.crm.received.slice(before).map((x) => `${x.method} ${x.url}`));
    return res;
  };
  const auth = { authorization: `Bearer ${token}` };
  await show('api/accounts', { target: '/proxy/crm/api/accounts/globex', headers: auth });
  await show('accounts', { target: '/proxy/crm/accounts/globex', headers: auth });
  await show('fwd', { target: `http://127.0.0.1:${env.crmPort}/api/accounts/globex`, headers: { 'proxy-authorization': `Bearer ${token}` } });
  await show('badpct', { target: '/proxy/%E0%A4%A/accounts', headers: auth });
  for (const who of ['U01ALICE', 'U03CAROL']) {
    try {
      const t = await proxyToken(env, { channel: 'C05SALES', invoker: who });
      await show(`put ${who}`, { method: 'PUT', target: '/proxy/crm/opportunities/globex-renewal', headers: { ...auth, authorization: `Bearer ${t}`, 'content-type': 'application/json' }, body: '{"stage":"won"}' });
    } catch (e) { console.log('token', who, (e as Error).message); }
  }
  console.log('CONNECT', JSON.stringify(await sendBytes(env.port, `CONNECT 127.0.0.1:${env.crmPort} HTTP/1.1\r\nHost: 127.0.0.1:${env.crmPort}\r\nProxy-Authorization: Bearer ${token}\r\n\r\n`)));
  console.log('hash', JSON.stringify(await sendBytes(env.port, `GET /proxy/crm/accounts/globex#x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)).slice(0, 300));
  console.log('guard', refused, lookedUp, Date.now() - t0);
});
