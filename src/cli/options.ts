import { InvalidArgumentError } from 'commander';

/**
 * A commander parser for a numeric option. A bad value throws commander's InvalidArgumentError,
 * which commander reports as one line (`error: option '--steps <n>' argument '-1' is invalid.
 * --steps must be ...`) with exit code 1: option parsing runs before any command action, so an
 * error of our own would escape `action()` as a stack trace.
 */
export function numberArg(name: string, o: { integer?: boolean; min?: number; max?: number } = {}): (v: string) => number {
  const { integer = false, min = -Infinity, max = Infinity } = o;
  const range = [min > -Infinity ? `>= ${min}` : '', max < Infinity ? `<= ${max}` : ''].filter(Boolean).join(' and ');
  const what = `${integer ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}`;
  return (v: string) => {
    const x = Number(v);
    const ok = integer ? /^\s*[-+]?\d+\s*$/.test(v) && Number.isSafeInteger(x) : v.trim() !== '' && Number.isFinite(x);
    if (!ok || x < min || x > max) throw new InvalidArgumentError(`${name} must be ${what}, got "${v}".`);
    return x;
  };
}

/** numberArg for integers from `min` (default 0) to `max`. */
export function intArg(name: string, min = 0, max = Infinity): (v: string) => number {
  return numberArg(name, { integer: true, min, max });
}
