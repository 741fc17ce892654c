/**
 * Shared by the `mimic score` tests: real tiny bundles (PyTorch exporter), real JPEG/PNG images from sharp, real
 * tar shards, the CLI run as a child process, and score files read back with apache-arrow itself (not with the
 * project's reader, so that a reader bug cannot hide a writer bug).
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tableFromIPC } from 'apache-arrow';
import sharp from 'sharp';
import { tinyBundle } from '../helpers/bundles.js';
import type { RawEntry } from '../helpers/shards.js';
import { rng32 } from '../../src/filter/random.js';

export const BIN = fileURLToPath(new URL('../../bin/mimic', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/wds/', import.meta.url));

/** The reference and two proxies that share its lineage (perturbed copies), tiny (32 px, P = 32). */
export async function bundles(): Promise<{ reference: string; proxy: string; proxy2: string }> {
  const reference = await tinyBundle({ seed: 1 });
  const [proxy, proxy2] = await Promise.all([
    tinyBundle({ from: reference, perturb: 0.05, seed: 2 }),
    tinyBundle({ from: reference, perturb: 0.1, seed: 3 }),
  ]);
  return { reference, proxy, proxy2 };
}

/** A seeded byte generator (the filter's xorshift32, seed scrambled), so every generated image is reproducible. */
export function rng(seed: number): () => number {
  return rng32(seed * 2654435761);
}

/**
 * A smooth random image (a few random colours blown up, plus a little noise), so that JPEGs have realistic sizes
 * and every seed looks different to the encoders.
 */
export async function randomImage(seed: number, width: number, height: number, format: 'jpeg' | 'png' | 'webp' = 'jpeg'): Promise<Buffer> {
  const r = rng(seed);
  const small = Buffer.alloc(4 * 4 * 3);
  for (let i = 0; i < small.length; i++) small[i] = Math.floor(r() * 256);
  const base = await sharp(small, { raw: { width: 4, height: 4, channels: 3 } }).resize(width, height, { kernel: 'cubic' }).raw().toBuffer();
  for (let i = 0; i < base.length; i++) base[i] = Math.max(0, Math.min(255, base[i]! + Math.floor((r() - 0.5) * 24)));
  const img = sharp(base, { raw: { width, height, channels: 3 } });
  if (format === 'png') return img.png().toBuffer();
  if (format === 'webp') return img.webp({ quality: 90 }).toBuffer();
  return img.jpeg({ quality: 90 }).toBuffer();
}

export function uidOf(seed: string | number): string {
  return createHash('md5').update(`uid:${seed}`).digest('hex');
}

/** `n` good image–caption–json samples (keys `<prefix>NNNN`), with sizes that vary so resizes vary. */
export async function goodSamples(n: number, opts: { seed?: number; prefix?: string; size?: number } = {}): Promise<
  { key: string; files: { jpg: Buffer; txt: string; json: string } }[]
> {
  const seed = opts.seed ?? 1;
  const out = [];
  for (let i = 0; i < n; i++) {
    const key = `${opts.prefix ?? ''}${String(i).padStart(4, '0')}`;
    const s = opts.size ?? 40;
    const jpg = await randomImage(seed * 100_003 + i, s + ((i * 7) % 23), s + ((i * 5) % 17));
    out.push({ key, files: { jpg, txt: `a photo of thing ${i} number ${seed}`, json: JSON.stringify({ uid: uidOf(`${seed}:${i}`), key }) } });
  }
  return out;
}

/** Tar entries, one sample after another (members in the given order). */
export function entriesOf(samples: { key: string; files: Record<string, Buffer | string> }[]): RawEntry[] {
  return samples.flatMap((s) => Object.entries(s.files).map(([ext, data]) => ({ name: `${s.key}.${ext}`, data })));
}

/** One score file read with apache-arrow: columns as plain arrays (nulls as null) and the schema metadata. */
export interface ScoreRows {
  length: number;
  metadata: Record<string, string>;
  fields: string[];
  col: (name: string) => unknown[];
  num: (name: string) => (number | null)[];
}

export function readScores(path: string): ScoreRows {
  const table = tableFromIPC(readFileSync(path));
  const cache = new Map<string, unknown[]>();
  const col = (name: string): unknown[] => {
    let v = cache.get(name);
    if (!v) {
      const c = table.getChild(name);
      if (!c) throw new Error(`${path} has no column ${name}`);
      v = Array.from({ length: table.numRows }, (_, i) => c.get(i));
      cache.set(name, v);
    }
    return v;
  };
  return {
    length: table.numRows,
    metadata: Object.fromEntries(table.schema.metadata),
    fields: table.schema.fields.map((f) => f.name),
    col,
    num: (name) => col(name) as (number | null)[],
  };
}

/** Every file under `dir`, relative, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** The score files (`*.arrow`) under `dir`, with their bytes' sha256. */
export function scoreFileHashes(dir: string): Record<string, string> {
  return Object.fromEntries(
    listFiles(dir)
      .filter((f) => f.endsWith('.arrow'))
      .map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]),
  );
}

export function tempFilesIn(dir: string): string[] {
  return listFiles(dir).filter((f) => f.includes('.tmp-'));
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `mimic ARGS` to completion (JSON logs on stderr: not a TTY). */
export function mimic(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string } = {}): CliResult {
  const r: SpawnSyncReturns<string> = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    timeout: 120_000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Run `mimic ARGS` asynchronously (so a test can kill it); resolves when it exits. */
export function mimicAsync(args: string[], opts: { env?: Record<string, string | undefined>; killAfterMs?: number } = {}): Promise<CliResult & { killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => {
      killed = child.kill('SIGKILL');
    }, opts.killAfterMs);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, killed: killed && signal === 'SIGKILL' });
    });
  });
}

/** Messages of the JSON log lines on stderr. */
export function logMessages(stderr: string): { msg: string; [k: string]: unknown }[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string });
}

export function fileSize(path: string): number {
  return statSync(path).size;
}
