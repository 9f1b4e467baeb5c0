/** Host matching of egress connections: exact, with default ports, as URLs read hosts. */
import { describe, expect, it } from 'vitest';

import { isHostAllowed } from '../../src/gateway/egress/destination.js';
import { connectionSchema } from '../../src/model/policy.js';

function allows(hosts: string[], target: string): boolean {
  const connection = connectionSchema.parse({ id: 'c', kind: 'http', hosts });
  return isHostAllowed(connection, new URL(target));
}

describe('isHostAllowed', () => {
  it.each([
    [['api.example.com'], 'https://api.example.com/x', true],
    [['api.example.com'], 'https://API.example.com/x', true],
    [['api.example.com'], 'https://api.example.com:443/x', true],
    [['api.example.com'], 'https://api.example.com:8443/x', false],
    [['api.example.com'], 'https://api.example.com.evil/x', false],
    [['api.example.com'], 'https://evil.api.example.com/x', false],
    [['api.example.com:8443'], 'https://api.example.com:8443/x', true],
    [['127.0.0.1:7500'], 'http://127.0.0.1:7500/x', true],
    [['127.0.0.1:7500'], 'http://127.0.0.1:7501/x', false],
    [['[::1]:7500'], 'http://[::1]:7500/x', true],
    [['[::ffff:127.0.0.1]:7500'], 'http://[::ffff:127.0.0.1]:7500/x', true],
    [['[::ffff:127.0.0.1]:7500'], 'http://127.0.0.1:7500/x', false],
  ])('%j for %s is %s', (hosts, target, expected) => {
    expect(allows(hosts, target)).toBe(expected);
  });
});
