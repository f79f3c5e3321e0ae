/**
 * The library's LogTape logger. Silent until the application configures a
 * sink for {@link LOG_CATEGORY}.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { LOG_CATEGORY } from "./constants.ts";

/** The logger every module of the library writes to. */
export const logger: Logger = getLogger([...LOG_CATEGORY]);
