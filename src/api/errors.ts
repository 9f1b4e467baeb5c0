/** An error the API sends to the client as `{ error, error_description }` with a status. */
export class ApiError extends Error {
  readonly statusCode: number;
  readonly error: string;
  readonly details: unknown;

  constructor(statusCode: number, error: string, description: string, details?: unknown) {
    super(description);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.error = error;
    this.details = details;
  }
}

export const badRequest = (description: string, details?: unknown) =>
  new ApiError(400, 'invalid_request', description, details);

export const notFound = (description: string) => new ApiError(404, 'not_found', description);
