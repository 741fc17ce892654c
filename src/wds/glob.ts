/**
 * A small shell-style glob for local shard paths (Node 20 has no fs.glob): `*`, `?` and `[...]` within one path
 * segment, `**` for any number of folders. As in a shell, wildcards do not match a leading dot. Results are
 * sorted so that a shard list always comes out in the same order.
 */
import { readdir } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';

export function hasGlobChars(path: string): boolean {
  return /[*?[]/.test(path);
}

export async function glob(pattern: string): Promise<string[]> {
  const absolute = isAbsolute(pattern);
  const segments = pattern.split('/').filter((s, i) => s !== '' || i === 0);
  let fixed = absolute ? '/' : '.';
  let i = absolute ? 1 : 0;
  // The folders before the first wildcard are walked into directly.
  while (i < segments.length - 1 && !hasGlobChars(segments[i])) {
    fixed = fixed === '.' ? segments[i] : join(fixed, segments[i]);
    i++;
  }
  const matches: string[] = [];
  await walk(fixed, segments.slice(i), matches, fixed === '.' && !absolute);
  return [...new Set(matches)].sort();
}

async function walk(dir: string, rest: string[], out: string[], relativeRoot: boolean): Promise<void> {
  if (rest.length === 0) return;
  const [head, ...tail] = rest;
  const entries = await list(dir);
  const child = (name: string) => (relativeRoot && dir === '.' ? name : join(dir, name));
  if (head === '**') {
    // `**` matches zero folders (try the rest here) or one more folder (descend, keeping `**`).
    await walk(dir, tail, out, relativeRoot);
    for (const e of entries) {
      if (e.isDirectory() && !e.name.startsWith('.')) await walk(child(e.name), rest, out, false);
    }
    return;
  }
  const re = segmentRegExp(head);
  for (const e of entries) {
    if (!re.test(e.name)) continue;
    if (tail.length === 0) {
      if (!e.isDirectory()) out.push(child(e.name));
    } else if (e.isDirectory() || e.isSymbolicLink()) {
      await walk(child(e.name), tail, out, false);
    }
  }
}

async function list(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch {
    // A folder that does not exist or cannot be read simply matches nothing; the caller reports an empty glob.
    return [];
  }
}

function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close < 0) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += '[' + body.replace(/\\/g, '\\\\') + ']';
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  // Wildcards never match a leading dot (hidden files), as in a shell.
  const hidden = segment.startsWith('.') ? '' : '(?!\\.)';
  return new RegExp('^' + hidden + re + '$');
}
