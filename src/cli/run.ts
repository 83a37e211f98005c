import { GrerankError } from '../errors.js';

/**
 * Wraps a command's action: a GrerankError (bad input, missing file) becomes one line on
 * stderr and exit code 1; anything else is a bug and keeps its stack trace (exit code 70).
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof GrerankError) {
        process.stderr.write(`error: ${e.message}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`internal error: ${(e as Error)?.stack ?? String(e)}\n`);
        process.exitCode = 70;
      }
    }
  };
}
