/** Flag value parsers shared by the commands: a bad value is a usage error that names the flag. */
import { InvalidArgumentError } from 'commander';
import { MimicError } from '../errors.js';

/** An integer flag ≥ min, for commander's option parser argument. */
export function intFlag(min = 0): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number ≥ ${min}, got "${v}"`);
    return n;
  };
}

/** A number flag that satisfies `ok` (described by `what`). */
export function numberFlag(ok: (n: number) => boolean, what: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new InvalidArgumentError(`expected ${what}, got "${v}"`);
    return n;
  };
}

/** One of a fixed set of words. */
export function choiceFlag<T extends string>(allowed: readonly T[]): (v: string) => T {
  return (v: string) => {
    if (!(allowed as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
}

/** A repeatable flag: each use appends. */
export function collect(v: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), v];
}

/** A comma-separated list. */
export function listFlag(v: string): string[] {
  return v.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
}

/*
 * Checks applied after parsing, for values that may come from defaults or a config file rather than the command
 * line (commander's parsers above only see typed flags): a bad value is an E_USAGE error naming the flag.
 */

/** `v` as a number that satisfies `ok` (described by `what`). */
export function checkNumber(flag: string, v: string, ok: (n: number) => boolean, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new MimicError('E_USAGE', `${flag} must be ${what}, got "${v}"`);
  return n;
}

/** `v` as a whole number ≥ min. */
export function checkInt(flag: string, v: string, min = 0): number {
  return checkNumber(flag, v, (n) => Number.isSafeInteger(n) && n >= min, min === 1 ? 'a positive whole number' : `a whole number ≥ ${min}`);
}

/** `v` as one of a fixed set of words. */
export function checkChoice<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw new MimicError('E_USAGE', `${flag} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T;
}
