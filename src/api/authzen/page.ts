import { badRequest } from '../errors.js';

const DEFAULT_LIMIT = 100;

/**
 * Pages search results. The token is the opaque base64url offset of the next page; an empty
 * `next_token` means there are no more results.
 */
export function paginate<T>(
  results: T[],
  page:
    | { token?: string | undefined; next_token?: string | undefined; limit?: number | undefined }
    | undefined,
) {
  const token = page?.token || page?.next_token;
  const offset = token ? decodeToken(token) : 0;
  const limit = page?.limit ?? DEFAULT_LIMIT;
  const slice = results.slice(offset, offset + limit);
  const next = offset + slice.length;
  return {
    results: slice,
    page: {
      next_token: next < results.length ? Buffer.from(String(next)).toString('base64url') : '',
      count: slice.length,
      total: results.length,
    },
  };
}

function decodeToken(token: string): number {
  const offset = Number(Buffer.from(token, 'base64url').toString('utf8'));
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw badRequest('page.token is invalid: pass the next_token of a previous response');
  }
  return offset;
}
