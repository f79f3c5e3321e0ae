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
 * A token that cannot be sent as an HTTP header value (empty, too long, or
 * with spaces or control characters); the request is not made (internal:
 * the endpoints return it as a `rejected` outcome). The message never
 * holds the token.
 *
 * @example
 * ```ts
 * import { InvalidTokenError } from "./errors.ts";
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
 * A configuration mistake of the command: a missing or malformed setting
 * (internal). The message names what to set or fix.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./errors.ts";
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
