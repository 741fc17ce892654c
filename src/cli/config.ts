/**
 * `--config FILE`: a YAML file whose keys are a command's long flags (kebab-case, as on the command line).
 * Flags given on the command line win; unknown keys are errors, so a typo never silently falls back to a default.
 */
import { readFileSync } from 'node:fs';
import type { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { MimicError } from '../errors.js';

/** Keys that fill positional arguments rather than options (e.g. `shards:` for `mimic score`). */
export interface PositionalKeys {
  [key: string]: { get(): string[]; set(values: string[]): void };
}

export function applyConfigFile(cmd: Command, file: string, positionals: PositionalKeys = {}): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MimicError('E_CONFIG', `cannot read the config file: ${(e as Error).message}`, { file });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new MimicError('E_CONFIG', `the config file is not valid YAML: ${(e as Error).message}`, { file });
  }
  if (doc === null || doc === undefined) return;
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new MimicError('E_CONFIG', 'the config file must be a mapping of option names to values', { file });
  }
  const options = new Map<string, Option>();
  for (const o of cmd.options as readonly Option[]) {
    if (o.long) options.set(o.long.replace(/^--(no-)?/, ''), o);
  }
  options.delete('config');
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (key in positionals) {
      const values = toStringList(value, key, file);
      if (positionals[key]!.get().length === 0) positionals[key]!.set(values);
      continue;
    }
    const opt = options.get(key);
    if (!opt) {
      const known = [...options.keys(), ...Object.keys(positionals)].sort().join(', ');
      throw new MimicError('E_CONFIG', `unknown key "${key}" in the config file`, {
        file,
        hint: `keys are the command's long flags without dashes: ${known}`,
      });
    }
    const attr = opt.attributeName();
    if (cmd.getOptionValueSource(attr) === 'cli' || cmd.getOptionValueSource(attr) === 'env') continue;
    cmd.setOptionValueWithSource(attr, coerce(opt, value, key, file), 'config');
  }
}

function toStringList(value: unknown, key: string, file: string): string[] {
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === 'string' || typeof v === 'number')) {
    throw new MimicError('E_CONFIG', `"${key}" must be a string or a list of strings`, { file });
  }
  return list.map(String);
}

/** Values go through the option's own parser, as if typed on the command line. */
function coerce(opt: Option, value: unknown, key: string, file: string): unknown {
  const parse = (opt as unknown as { parseArg?: (v: string, prev: unknown) => unknown }).parseArg;
  const isBool = !opt.required && !opt.optional;
  if (isBool) {
    if (typeof value !== 'boolean') throw new MimicError('E_CONFIG', `"${key}" must be true or false`, { file });
    return opt.negate ? !value : value;
  }
  if (opt.variadic || Array.isArray(value)) {
    if (!opt.variadic && !parse) {
      throw new MimicError('E_CONFIG', `"${key}" takes one value, not a list`, { file });
    }
    let acc: unknown = opt.variadic ? undefined : opt.defaultValue;
    for (const v of toStringList(value, key, file)) acc = parse ? parse(v, acc) : [...((acc as unknown[]) ?? []), v];
    return acc;
  }
  if (typeof value === 'object' && value !== null) {
    throw new MimicError('E_CONFIG', `"${key}" must be a single value`, { file });
  }
  const s = String(value);
  try {
    return parse ? parse(s, opt.defaultValue) : s;
  } catch (e) {
    throw new MimicError('E_CONFIG', `"${key}": ${(e as Error).message}`, { file });
  }
}
