/**
 * Error classes of the library. None of their messages ever carries a token
 * or a secret.
 *
 * @module
 */

/**
 * Base class of every error this library throws.
 *
 * @example Tell the library's errors from others
 * ```ts
 * import { HeartbeatError } from "@molecule/heartbeat";
 * try {
 *   throw new HeartbeatError("boom");
 * } catch (e) {
 *   if (e instanceof HeartbeatError) console.error(e.message);
 * }
 * ```
 */
export class HeartbeatError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options The standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HeartbeatError";
  }
}

/**
 * The platform rejected a workspace's token (HTTP 401 or 403) at register.
 *
 * The token is wrong or revoked; the operator regenerates it in the canvas
 * (Tokens tab). The library never exits the process: the caller decides.
 *
 * @example Exit with the reference's status 3
 * ```ts
 * import { register, RegisterAuthError } from "@molecule/heartbeat";
 * try {
 *   await register({
 *     platformUrl: "http://127.0.0.1:1",
 *     workspaceId: "ws-1",
 *     token: "t",
 *   });
 * } catch (e) {
 *   if (e instanceof RegisterAuthError) console.error(e.message);
 * }
 * ```
 */
export class RegisterAuthError extends HeartbeatError {
  /** The HTTP status the platform answered: 401 or 403. */
  readonly status: number;
  /** The workspace whose token was rejected. */
  readonly workspaceId: string;

  /**
   * Creates the error; the message names the workspace, never the token.
   *
   * @param workspaceId The workspace whose token was rejected.
   * @param status The HTTP status, 401 or 403.
   */
  constructor(workspaceId: string, status: number) {
    super(
      `register rejected with HTTP ${status}: the token is invalid for workspace ${workspaceId}. ` +
        "Regenerate it from the canvas → Tokens tab.",
    );
    this.name = "RegisterAuthError";
    this.status = status;
    this.workspaceId = workspaceId;
  }
}

/**
 * A token that cannot be sent as an HTTP header value (empty, too long, or
 * with spaces or control characters); the request is not made. The message
 * never holds the token.
 *
 * @example
 * ```ts
 * import { InvalidTokenError } from "@molecule/heartbeat";
 * const error = new InvalidTokenError();
 * console.log(error.name); // "InvalidTokenError"
 * ```
 */
export class InvalidTokenError extends HeartbeatError {
  /** Creates the error. */
  constructor() {
    super(
      "the workspace token is not a valid HTTP header value (1 to 4096 visible ASCII characters, no spaces or line breaks): not sent",
    );
    this.name = "InvalidTokenError";
  }
}

/**
 * A configuration mistake: a missing or malformed setting. The message names
 * what to set or fix.
 *
 * @example
 * ```ts
 * import { ConfigError } from "@molecule/heartbeat";
 * const e = new ConfigError("PLATFORM_URL is not set", "PLATFORM_URL");
 * console.log(e.setting); // "PLATFORM_URL"
 * ```
 */
export class ConfigError extends HeartbeatError {
  /** The variable or flag to fix, when there is one. */
  readonly setting: string | undefined;

  /**
   * Creates the error.
   *
   * @param message What is wrong and what to set.
   * @param setting The variable or flag to fix.
   */
  constructor(message: string, setting?: string) {
    super(message);
    this.name = "ConfigError";
    this.setting = setting;
  }
}
