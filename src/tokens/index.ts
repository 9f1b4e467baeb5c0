export { MAX_TOKEN_LENGTH } from './jws.js';
export { TokenError, type TokenErrorCode } from './errors.js';
export { fetchJwks, type FetchJwksOptions } from './fetch-jwks.js';
export { signToken, type SignTokenOptions } from './issue.js';
export {
  type RevocableClaims,
  RevocationStore,
  type RevocationStoreOptions,
} from './revocations.js';
export {
  type CurrentSigningKey,
  SIGNING_ALGORITHM,
  SigningKeyStore,
  type SigningKeyStoreOptions,
} from './signing-keys.js';
export {
  ACCESS_TOKEN_TYPE,
  IDENTITY_TOKEN_TYPE,
  type TokenType,
  type VerifiedPayload,
} from './types.js';
export {
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DEFAULT_EXTERNAL_MAX_LIFETIME_SECONDS,
  type VerifiedDeputyPayload,
  verifyExternalToken,
  type VerifyExternalTokenOptions,
  verifyToken,
  type VerifyTokenOptions,
} from './verify.js';
