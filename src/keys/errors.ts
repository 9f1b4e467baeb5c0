/** Stable codes of {@link KeyError}. */
export type KeyErrorCode =
  | 'ERR_MASTER_KEY_INVALID'
  | 'ERR_MASTER_KEY_FILE_UNSAFE'
  | 'ERR_UNSEAL_FAILED'
  | 'ERR_PUBLIC_KEY_INVALID';

/**
 * An error from loading or using Deputy's keys. Messages name the variable, file or context
 * that failed and never contain key material or plaintext.
 */
export class KeyError extends Error {
  readonly code: KeyErrorCode;

  constructor(code: KeyErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KeyError';
    this.code = code;
  }
}
