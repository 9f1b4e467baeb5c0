import type { Deputy } from '../deputy.js';
import type { ClientAuthContext } from './client-auth.js';
import { invalidRequest } from './errors.js';

/** Settings of Deputy's OAuth 2.0 authorization server. */
export interface OAuthSettings {
  /** Issuer identifier (RFC 8414): Deputy's public base URL, without a trailing slash. */
  readonly issuer: string;
  /** Identity token lifetime in seconds. @default 600 */
  readonly identityTokenLifetimeSeconds: number;
  /**
   * Resource identifier of Deputy's own gateway (`<issuer>/mcp`). Every workspace accepts it as
   * an audience, with the scopes in {@link GATEWAY_SCOPES}. No gateway when omitted.
   */
  readonly gatewayResource?: string;
}

/**
 * Scopes of gateway access tokens: `mcp` for the MCP endpoint, `proxy` for the HTTP egress
 * proxy. They grant no access by themselves: every call through the gateway is decided.
 */
export const GATEWAY_SCOPES = ['mcp', 'proxy'] as const;

export interface OAuthContext {
  readonly deputy: Deputy;
  readonly settings: OAuthSettings;
  readonly tokenEndpoint: string;
  readonly clientAuth: ClientAuthContext;
}

export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export function createOAuthContext(deputy: Deputy, settings: OAuthSettings): OAuthContext {
  const lifetime = settings.identityTokenLifetimeSeconds;
  if (
    !Number.isSafeInteger(lifetime) ||
    lifetime < 30 ||
    lifetime > deputy.signingKeys.maxTokenLifetimeSeconds
  ) {
    throw new TypeError(
      `identityTokenLifetimeSeconds must be from 30 to ${deputy.signingKeys.maxTokenLifetimeSeconds}`,
    );
  }
  const tokenEndpoint = `${settings.issuer}/oauth/token`;
  return {
    deputy,
    settings,
    tokenEndpoint,
    clientAuth: {
      clients: deputy.clients,
      db: deputy.database.db,
      issuer: settings.issuer,
      tokenEndpoint,
    },
  };
}

/** Reads a form parameter and rejects it when repeated (RFC 6749, section 3.2). */
export function single(form: URLSearchParams, name: string): string | undefined {
  const values = form.getAll(name);
  if (values.length > 1) {
    throw invalidRequest(`${name} must appear at most once`);
  }
  return values[0];
}
