/**
 * Shard lists as users write them (webdataset / OpenCLIP conventions): several lists joined by `::`, brace
 * expansion, local paths and globs, `file://`, `http(s)://`, `s3://bucket/key`, `pipe:CMD` and `-` (stdin).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MimicError } from '../errors.js';
import { braceExpand } from './brace-expand.js';
import { glob, hasGlobChars } from './glob.js';

export type ShardKind = 'file' | 'http' | 's3' | 'pipe' | 'stdin';

export interface ExpandOptions {
  /** `pipe:CMD` runs a shell command, so it is refused unless the user asked for it. */
  allowPipe?: boolean;
}

export function shardKind(url: string): ShardKind {
  if (url === '-') return 'stdin';
  if (url.startsWith('pipe:')) return 'pipe';
  if (/^https?:\/\//i.test(url)) return 'http';
  if (/^s3:\/\//i.test(url)) return 's3';
  return 'file';
}

/** A `file://` URL as a path; anything else unchanged. */
export function localPath(url: string): string {
  return url.startsWith('file://') ? fileURLToPath(url) : url;
}

export function pipeRefused(url: string): MimicError {
  return new MimicError('E_USAGE', `the shard "${url}" runs a shell command, which is off by default`, {
    hint: 'pass --allow-pipe (or { allowPipe: true }) if you trust this shard list',
    file: url,
  });
}

/**
 * Expand shard specs into the ordered list of shard URLs. Every spec may hold several lists joined by `::`;
 * globs that match nothing and shards listed twice are errors (a shard read twice would score its rows twice).
 */
export async function expandShardSpecs(specs: string[], opts: ExpandOptions = {}): Promise<string[]> {
  const out: string[] = [];
  for (const spec of specs) {
    for (const piece of spec.split('::')) {
      if (piece.trim() === '') {
        throw new MimicError('E_SHARD_SPEC', `the shard list "${spec}" has an empty entry`, {
          hint: 'lists are joined by "::" with nothing between or around the separators',
        });
      }
      for (const url of braceExpand(piece)) {
        const kind = shardKind(url);
        if (kind === 'pipe' && !opts.allowPipe) throw pipeRefused(url);
        if (kind === 'file') {
          const path = localPath(url);
          if (hasGlobChars(path) && !existsSync(path)) {
            const matches = await glob(path);
            if (matches.length === 0) {
              throw new MimicError('E_SHARD_SPEC', `the pattern "${path}" matches no file`, {
                hint: 'check the folder and the pattern (quote it so that the shell does not expand it first)',
              });
            }
            out.push(...matches);
            continue;
          }
          out.push(path);
          continue;
        }
        out.push(url);
      }
    }
  }
  if (out.length === 0) {
    throw new MimicError('E_SHARD_SPEC', 'the shard list is empty', { hint: 'name at least one shard' });
  }
  const seen = new Set<string>();
  for (const url of out) {
    const id = shardKind(url) === 'file' ? resolve(url) : url;
    if (seen.has(id)) {
      throw new MimicError('E_SHARD_SPEC', `the shard "${url}" is listed more than once`, {
        hint: 'each shard may appear once: its rows are identified by shard and row index',
        file: url,
      });
    }
    seen.add(id);
  }
  return out;
}

/**
 * Each shard's name relative to the folder that all shards share (e.g. `/d/a/0.tar`, `/d/b/0.tar` → `a/0.tar`,
 * `b/0.tar`): output files are laid out by these names, so they never collide even when basenames do. URLs
 * contribute scheme, host and path (not the query); `pipe:` commands the last shard-like word they contain.
 * Names that would still collide (only a query differs, or odd characters were replaced) get a short hash.
 */
export function shardNames(urls: string[]): string[] {
  const segs = urls.map(nameSegments);
  let prefix = 0;
  const shortest = Math.min(...segs.map((s) => s.length - 1));
  while (prefix < shortest && segs.every((s) => s[prefix] === segs[0][prefix])) prefix++;
  const names = segs.map((s) => s.slice(prefix).map(safeSegment).join('/'));
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n.toLowerCase(), (counts.get(n.toLowerCase()) ?? 0) + 1);
  return names.map((n, i) => {
    if (counts.get(n.toLowerCase())! < 2) return n;
    const hash = createHash('sha1').update(urls[i]).digest('hex').slice(0, 8);
    return `${n}-${hash}`;
  });
}

/** The last path segment of a shard, as OpenCLIP's sizes.json keys it. */
export function shardBasename(url: string): string {
  const s = nameSegments(url);
  return s[s.length - 1];
}

function nameSegments(url: string): string[] {
  switch (shardKind(url)) {
    case 'stdin':
      return ['stdin'];
    case 'http': {
      const u = new URL(url);
      return [u.protocol, u.host, ...pathSegments(decodeURIComponentSafe(u.pathname))];
    }
    case 's3': {
      const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url)!;
      return ['s3:', m[1], ...pathSegments(m[2])];
    }
    case 'pipe': {
      const words = url.slice('pipe:'.length).trim().split(/\s+/);
      const target = [...words].reverse().find((w) => /\.(tar|tgz|gz)\b/i.test(w));
      return target ? nameSegments(target.replace(/^['"]|['"]$/g, '')) : ['pipe', url.slice('pipe:'.length)];
    }
    case 'file':
      return pathSegments(resolve(localPath(url)));
  }
}

function pathSegments(path: string): string[] {
  const s = path.split('/').filter((x) => x !== '');
  return s.length > 0 ? s : ['_'];
}

function safeSegment(segment: string): string {
  if (segment === '.' || segment === '..') return '_';
  return segment.replace(/[^A-Za-z0-9._\-+=@,]/g, '_');
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
