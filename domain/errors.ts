/** An error meant for a person: a stable code, a message that says what to do, an HTTP status. */
export class WardenError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: 400 | 401 | 403 | 404 | 409 | 422 | 423 | 429 | 503 = 400,
  ) {
    super(message);
    this.name = 'WardenError';
  }
}
