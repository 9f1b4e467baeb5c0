/** Presentation of a connection's credential on an upstream HTTP request. */
import type { Connection } from '../model/policy.js';

/** Default header name of the `header` scheme and parameter name of `query` and `body`. */
const DEFAULT_NAMES = { header: 'x-api-key', query: 'api_key', body: 'api_key' } as const;

/**
 * Headers that carry the credential for the `bearer`, `basic` and `header` schemes, with
 * lowercase names. Empty for the other schemes and when there is no secret.
 */
export function credentialHeaders(
  connection: Connection,
  secret: string | null,
): Record<string, string> {
  const credential = connection.credential;
  if (!credential || secret === null) return {};
  switch (credential.scheme) {
    case 'bearer':
      return { authorization: `Bearer ${secret}` };
    case 'basic': {
      const pair = Buffer.from(`${credential.username ?? ''}:${secret}`).toString('base64');
      return { authorization: `Basic ${pair}` };
    }
    case 'header':
      return { [(credential.name ?? DEFAULT_NAMES.header).toLowerCase()]: secret };
    default:
      return {};
  }
}

/** Query parameter that carries the credential for the `query` scheme, if it is one. */
export function credentialQuery(
  connection: Connection,
  secret: string | null,
): [name: string, value: string] | null {
  const credential = connection.credential;
  if (credential?.scheme !== 'query' || secret === null) return null;
  return [credential.name ?? DEFAULT_NAMES.query, secret];
}

/**
 * Sets the credential as a body parameter for the `body` scheme: a field of a JSON object body,
 * or a parameter of a form body. The caller's own value for that name is replaced. Throws a
 * TypeError when the body is neither.
 */
export function injectBodyCredential(
  connection: Connection,
  secret: string | null,
  contentType: string,
  body: Buffer,
): Buffer {
  const credential = connection.credential;
  if (credential?.scheme !== 'body' || secret === null) return body;
  const name = credential.name ?? DEFAULT_NAMES.body;
  const type = contentType.split(';')[0]!.trim().toLowerCase();

  if (type === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(body.toString('utf8'));
    form.delete(name);
    form.set(name, secret);
    return Buffer.from(form.toString());
  }
  if (type === 'application/json' || (type === '' && body.length === 0)) {
    const parsed: unknown = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new TypeError('the JSON body must be an object to carry the credential');
    }
    return Buffer.from(JSON.stringify({ ...parsed, [name]: secret }));
  }
  throw new TypeError('the body must be application/json or application/x-www-form-urlencoded');
}

/** Tests whether the connection's credential scheme can be presented over HTTP. */
export function isHttpScheme(connection: Connection): boolean {
  const scheme = connection.credential?.scheme;
  return scheme === undefined || ['bearer', 'basic', 'header', 'query', 'body'].includes(scheme);
}

/**
 * Lists the forms in which the credential goes on the wire or comes back in a response: as is,
 * percent- and form-encoded, JSON-escaped (as in JSON returned inside a text), with `\/`
 * escapes, and for `basic` the base64 of `user:secret`. Each is scrubbed from what reaches
 * the agent. Forms shorter than 4 characters are left out.
 */
export function secretForms(connection: Connection, secret: string | null): string[] {
  if (secret === null) return [];
  const escaped = JSON.stringify(secret).slice(1, -1);
  const forms = [
    secret,
    encodeURIComponent(secret),
    new URLSearchParams({ s: secret }).toString().slice(2),
    escaped,
    escaped.replaceAll('/', '\\/'),
  ];
  if (connection.credential?.scheme === 'basic') {
    forms.push(Buffer.from(`${connection.credential.username ?? ''}:${secret}`).toString('base64'));
  }
  return [...new Set(forms)].filter((form) => form.length >= 4);
}
