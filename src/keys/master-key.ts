import { randomBytes } from 'node:crypto';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { KeyError } from './errors.js';

/** Length of the master key in bytes (AES-256 and HKDF input). */
export const MASTER_KEY_BYTES = 32;

/** Environment variable that sets the master key and takes precedence over the key file. */
export const MASTER_KEY_ENV = 'DEPUTY_MASTER_KEY';

/** Name of the key file inside the data directory. */
export const MASTER_KEY_FILE = 'master.key';

const EXPECTED_FORMAT = 'expected exactly 32 bytes encoded as base64 or as 64 hex digits';

export interface LoadMasterKeyOptions {
  /** Directory that contains `master.key`, used when DEPUTY_MASTER_KEY is not set. */
  dataDir: string;
  /** Environment to read DEPUTY_MASTER_KEY from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/** The master key and where it came from, for start-up logs. */
export interface MasterKey {
  key: Buffer;
  source: 'env' | 'file';
  /** Path of the key file, or null when the key came from the environment. */
  path: string | null;
  /** Whether this call generated the key file. */
  created: boolean;
}

/**
 * Loads the master key from DEPUTY_MASTER_KEY, or else from `<dataDir>/master.key`. A missing
 * key file is generated with mode 0600.
 *
 * Throws a KeyError with code ERR_MASTER_KEY_INVALID when the variable or file does not
 * decode to 32 bytes, and ERR_MASTER_KEY_FILE_UNSAFE when group or other users have any
 * access to the key file. Neither message contains the key.
 */
export async function loadMasterKey(options: LoadMasterKeyOptions): Promise<MasterKey> {
  const env = options.env ?? process.env;
  const value = env[MASTER_KEY_ENV];
  if (value !== undefined) {
    const key = decodeMasterKey(value);
    if (key === null) {
      throw new KeyError(
        'ERR_MASTER_KEY_INVALID',
        `${MASTER_KEY_ENV} is invalid: ${EXPECTED_FORMAT} (generate one with openssl rand -base64 32)`,
      );
    }
    return { key, source: 'env', path: null, created: false };
  }

  return await loadKeyFile(options.dataDir);
}

/** Decodes 64 hex digits or base64 (standard or URL-safe, padding optional) of 32 bytes. */
export function decodeMasterKey(text: string): Buffer | null {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) {
    return Buffer.from(trimmed, 'hex');
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    return null;
  }

  // Buffer.from ignores stray characters and bad padding, so the decoded bytes must
  // re-encode to the same text.
  const unpadded = trimmed.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  const key = Buffer.from(unpadded, 'base64');
  const canonical = key.toString('base64').replace(/=+$/, '');
  if (key.length !== MASTER_KEY_BYTES || canonical !== unpadded) {
    return null;
  }
  return key;
}

async function loadKeyFile(dataDir: string): Promise<MasterKey> {
  const path = join(dataDir, MASTER_KEY_FILE);
  const existing = await readKeyFile(path);
  if (existing !== null) {
    return { key: existing, source: 'file', path, created: false };
  }

  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const created = await createKeyFile(path);
  if (created !== null) {
    return { key: created, source: 'file', path, created: true };
  }

  // Another process created the file between the read and the link.
  const raced = await readKeyFile(path);
  if (raced === null) {
    throw new KeyError(
      'ERR_MASTER_KEY_INVALID',
      `master key file ${path} was deleted while it was being loaded: start Deputy again`,
    );
  }
  return { key: raced, source: 'file', path, created: false };
}

/** Reads and checks the key file, or returns null when it does not exist. */
async function readKeyFile(path: string): Promise<Buffer | null> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }

  try {
    // fstat on the open handle, so the checked file is the one that is read.
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new KeyError('ERR_MASTER_KEY_INVALID', `master key file ${path} is not a regular file`);
    }
    // NOTE: Windows has no POSIX modes, so the check is skipped there.
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw new KeyError(
        'ERR_MASTER_KEY_FILE_UNSAFE',
        `master key file ${path} has mode ${mode}, so group or other users can access it: ` +
          `run chmod 600 ${path}`,
      );
    }

    const key = decodeMasterKey(await handle.readFile('utf8'));
    if (key === null) {
      throw new KeyError(
        'ERR_MASTER_KEY_INVALID',
        `master key file ${path} is invalid: ${EXPECTED_FORMAT}`,
      );
    }
    return key;
  } finally {
    await handle.close();
  }
}

/**
 * Writes a new random key to a temporary file and links it to `path`. Returns null when
 * `path` already exists. The link is atomic, so a concurrent reader never sees a partial file.
 */
async function createKeyFile(path: string): Promise<Buffer | null> {
  const key = randomBytes(MASTER_KEY_BYTES);
  const temporaryPath = `${path}.${randomBytes(6).toString('hex')}.tmp`;

  const handle = await open(temporaryPath, 'wx', 0o600);
  try {
    await handle.writeFile(`${key.toString('base64')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }

  try {
    await link(temporaryPath, path);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return null;
    throw error;
  } finally {
    await unlink(temporaryPath);
  }
}
