import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { KeyError } from '../../src/keys/errors.js';
import { decodeMasterKey, loadMasterKey } from '../../src/keys/master-key.js';

let dataDir: string;

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'deputy-keys-'));
});

afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

async function loadError(promise: Promise<unknown>): Promise<KeyError> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(KeyError);
  return error as KeyError;
}

describe('loadMasterKey from DEPUTY_MASTER_KEY', () => {
  const key = randomBytes(32);

  it.each([
    ['hex', key.toString('hex')],
    ['upper-case hex', key.toString('hex').toUpperCase()],
    ['base64', key.toString('base64')],
    ['base64url without padding', key.toString('base64url')],
    ['base64 with a trailing newline', `${key.toString('base64')}\n`],
  ])('accepts %s', async (_name, value) => {
    const loaded = await loadMasterKey({ dataDir, env: { DEPUTY_MASTER_KEY: value } });

    expect(loaded.key.equals(key)).toBe(true);
    expect(loaded.source).toBe('env');
    expect(loaded.path).toBeNull();
    expect(loaded.created).toBe(false);
  });

  it.each([
    ['empty', ''],
    ['31 bytes', randomBytes(31).toString('base64')],
    ['33 bytes', randomBytes(33).toString('base64')],
    ['63 hex digits', randomBytes(32).toString('hex').slice(1)],
    ['a passphrase', 'correct horse battery staple and more'],
    [
      'base64 with a stray character',
      `${key.toString('base64').slice(0, 20)}!${key.toString('base64').slice(21)}`,
    ],
    ['base64 with too much padding', `${key.toString('base64url')}===`],
  ])('rejects %s without echoing it', async (_name, value) => {
    const error = await loadError(loadMasterKey({ dataDir, env: { DEPUTY_MASTER_KEY: value } }));

    expect(error.code).toBe('ERR_MASTER_KEY_INVALID');
    expect(error.message).toContain('DEPUTY_MASTER_KEY');
    expect(error.message).toContain('base64');
    if (value.length > 0) {
      expect(error.message).not.toContain(value.trim());
    }
  });

  it('takes precedence over the key file', async () => {
    await loadMasterKey({ dataDir, env: {} });
    const loaded = await loadMasterKey({
      dataDir,
      env: { DEPUTY_MASTER_KEY: key.toString('hex') },
    });

    expect(loaded.key.equals(key)).toBe(true);
    expect(loaded.source).toBe('env');
  });

  it('creates no key file', async () => {
    await loadMasterKey({ dataDir, env: { DEPUTY_MASTER_KEY: key.toString('hex') } });

    expect(() => statSync(join(dataDir, 'master.key'))).toThrow();
  });
});

describe('loadMasterKey from the key file', () => {
  it('creates the file with mode 0600', async () => {
    const loaded = await loadMasterKey({ dataDir, env: {} });
    const path = join(dataDir, 'master.key');

    expect(loaded.created).toBe(true);
    expect(loaded.source).toBe('file');
    expect(loaded.path).toBe(path);
    expect(loaded.key).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim()).toBe(loaded.key.toString('base64'));
  });

  it('creates a missing data directory', async () => {
    const nested = join(dataDir, 'a', 'b');
    const loaded = await loadMasterKey({ dataDir: nested, env: {} });

    expect(loaded.path).toBe(join(nested, 'master.key'));
    expect(statSync(join(nested, 'master.key')).isFile()).toBe(true);
  });

  it('returns the same key on the next load', async () => {
    const first = await loadMasterKey({ dataDir, env: {} });
    const second = await loadMasterKey({ dataDir, env: {} });

    expect(second.key.equals(first.key)).toBe(true);
    expect(second.created).toBe(false);
  });

  it('creates one key under concurrent loads', async () => {
    const loads = await Promise.all(
      Array.from({ length: 8 }, () => loadMasterKey({ dataDir, env: {} })),
    );

    expect(loads.filter((loaded) => loaded.created)).toHaveLength(1);
    for (const loaded of loads) {
      expect(loaded.key.equals(loads[0]!.key)).toBe(true);
    }
  });

  it.each([0o644, 0o640, 0o604, 0o620])('rejects a file with mode %o', async (mode) => {
    const path = join(dataDir, 'master.key');
    writeFileSync(path, randomBytes(32).toString('base64'));
    chmodSync(path, mode);

    const error = await loadError(loadMasterKey({ dataDir, env: {} }));

    expect(error.code).toBe('ERR_MASTER_KEY_FILE_UNSAFE');
    expect(error.message).toContain(path);
    expect(error.message).toContain(`chmod 600 ${path}`);
  });

  it('accepts a file with mode 0400', async () => {
    const path = join(dataDir, 'master.key');
    const key = randomBytes(32);
    writeFileSync(path, key.toString('hex'));
    chmodSync(path, 0o400);

    const loaded = await loadMasterKey({ dataDir, env: {} });

    expect(loaded.key.equals(key)).toBe(true);
  });

  it('rejects invalid file contents without echoing them', async () => {
    const path = join(dataDir, 'master.key');
    const contents = randomBytes(16).toString('hex');
    writeFileSync(path, contents, { mode: 0o600 });

    const error = await loadError(loadMasterKey({ dataDir, env: {} }));

    expect(error.code).toBe('ERR_MASTER_KEY_INVALID');
    expect(error.message).toContain(path);
    expect(error.message).not.toContain(contents);
  });
});

describe('decodeMasterKey', () => {
  it('prefers hex for 64 hex digits', () => {
    const hex = 'ab'.repeat(32);

    expect(decodeMasterKey(hex)?.toString('hex')).toBe(hex);
  });

  it('returns null for other lengths', () => {
    expect(decodeMasterKey(randomBytes(24).toString('base64'))).toBeNull();
  });
});
