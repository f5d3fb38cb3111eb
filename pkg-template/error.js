// The exported error class, in a module of its own: the server build's glue, the browser build
// and the package entries all import this one file, so `instanceof AuthError` holds across them.

/** Every qauth failure. `code` is stable; `retryable` says whether trying again can help. */
export class AuthError extends Error {
  static name = "AuthError"; // the shipped file is minified: the class keeps its name

  constructor(code, message, hint, retryable, status, retryAfter, messages) {
    super(message);
    this.name = "AuthError";
    this.code = code;
    this.retryable = retryable;
    this.hint = hint;
    if (status !== undefined) this.status = status;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
    if (messages !== undefined) this.messages = messages;
  }
  toJSON() {
    const { name, code, message, hint, retryable, status, retryAfter, messages, data } = this;
    return { name, code, message, hint, retryable, status, retryAfter, messages, data };
  }
}

export function makeAuthError(code, message, hint, retryable, status, retryAfter, messages) {
  return new AuthError(code, message, hint, retryable, status, retryAfter, messages);
}
