/**
 * An agent runtime as it talks to Deputy: it gets an identity token for one agent in one
 * channel, exchanges it for a gateway access token, and calls tools over MCP.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

export interface RuntimeCredentials {
  /** Deputy's base URL. */
  url: string;
  clientId: string;
  clientSecret: string;
}

/** The scope the agent acts in, and the member who asked. */
export interface Placement {
  /** Channel id, or `dm:<member>`; the workspace scope when omitted. */
  channel?: string;
  invoker?: string;
  thread?: string;
}

/** A failed token request: the HTTP status and the OAuth error body. */
export class TokenRequestError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(
      `token request failed with ${status}: ${String(body.error)} (${String(body.error_description)})`,
    );
    this.name = 'TokenRequestError';
  }
}

/** Requests a gateway access token (`mcp proxy`) for the agent in `placement`. */
export async function gatewayToken(
  credentials: RuntimeCredentials,
  placement: Placement,
): Promise<string> {
  const identity = await tokenRequest(credentials, {
    grant_type: 'client_credentials',
    ...definedOnly(placement),
  });
  const access = await tokenRequest(credentials, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: identity,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    resource: `${credentials.url}/mcp`,
    scope: 'mcp proxy',
  });
  return access;
}

/** Connects an MCP client to the gateway with `token`, on the given protocol revision. */
export async function connectGateway(
  url: string,
  token: string,
  revision: 'legacy' | 'modern' = 'legacy',
): Promise<Client> {
  const client = new Client(
    { name: 'acme-runtime', version: '1.0.0' },
    revision === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
  );
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return client;
}

async function tokenRequest(
  credentials: RuntimeCredentials,
  form: Record<string, string>,
): Promise<string> {
  const basic = Buffer.from(
    `${encodeURIComponent(credentials.clientId)}:${encodeURIComponent(credentials.clientSecret)}`,
  ).toString('base64');
  const response = await fetch(`${credentials.url}/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form),
  });
  const body = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) throw new TokenRequestError(response.status, body);
  return body.access_token as string;
}

function definedOnly(placement: Placement): Record<string, string> {
  return Object.fromEntries(
    Object.entries(placement).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
