/**
 * `mimic inspect`: read shards end to end (without keeping member bytes) and count what a webdataset pipeline
 * would see — samples, members, extensions, bytes — and everything it would trip over: samples with problems,
 * skipped members, repeated keys, broken or unreachable shards. A broken shard is reported and the next is read.
 */
import { errorMessage, isMimicError } from '../errors.js';
import { openShard } from './shard-reader.js';
import { shardBasename, shardNames } from './shard-spec.js';
import type { ShardInfo, ShardReadOptions } from './types.js';
import { writeFileAtomic } from '../atomic-file.js';

export interface ProblemSample {
  row: number;
  key: string;
  offset: number;
  status: string;
  message: string;
}

export interface ShardReport {
  shard: string;
  /** The shard's name relative to the folder all listed shards share. */
  name: string;
  status: 'ok' | 'error';
  info?: ShardInfo;
  gzip: boolean;
  samples: number;
  /** Regular members grouped into samples. */
  members: number;
  /** Bytes of the tar stream (decompressed). */
  tarBytes: number;
  /** Bytes read from the source as stored. */
  storedBytes: number;
  /** How many samples have each extension. */
  extensions: Record<string, number>;
  /** Entries webdataset skips: folders and links, top-level `__*__` names, names without an extension. */
  skipped: { nonRegular: number; meta: number; noExtension: number };
  repeatedKeys: number;
  /** Samples with a problem, by status. */
  problems: Record<string, number>;
  /** The first few samples with a problem, for the report. */
  problemSamples: ProblemSample[];
  error?: { code: string; message: string; hint?: string };
}

export interface InspectTotals {
  shards: number;
  failedShards: number;
  samples: number;
  members: number;
  tarBytes: number;
  storedBytes: number;
  extensions: Record<string, number>;
  skipped: { nonRegular: number; meta: number; noExtension: number };
  repeatedKeys: number;
  problems: Record<string, number>;
}

export interface InspectReport {
  shards: ShardReport[];
  total: InspectTotals;
}

export interface InspectOptions extends ShardReadOptions {
  /** Problem samples listed per shard (all are counted). */
  maxProblemSamples?: number;
  /** Called after each sample with the running counts (for a progress display). */
  onProgress?: (p: { shardIndex: number; shards: number; shard: string; samples: number; tarBytes: number }) => void;
  /** Called as each shard is done. */
  onShard?: (report: ShardReport, index: number) => void;
}

export async function inspectShards(urls: string[], opts: InspectOptions = {}): Promise<InspectReport> {
  const names = shardNames(urls);
  const reports: ShardReport[] = [];
  for (let i = 0; i < urls.length; i++) {
    opts.signal?.throwIfAborted();
    const report = await inspectShard(urls[i], names[i], i, urls.length, opts);
    reports.push(report);
    opts.onShard?.(report, i);
  }
  return { shards: reports, total: totals(reports) };
}

async function inspectShard(
  url: string,
  name: string,
  index: number,
  count: number,
  opts: InspectOptions,
): Promise<ShardReport> {
  const report: ShardReport = {
    shard: url,
    name,
    status: 'ok',
    gzip: false,
    samples: 0,
    members: 0,
    tarBytes: 0,
    storedBytes: 0,
    extensions: {},
    skipped: { nonRegular: 0, meta: 0, noExtension: 0 },
    repeatedKeys: 0,
    problems: {},
    problemSamples: [],
  };
  const maxListed = opts.maxProblemSamples ?? 20;
  let stats;
  try {
    const shard = await openShard(url, { ...opts, wantExtensions: () => false });
    report.info = shard.info;
    stats = shard.stats;
    for await (const s of shard.samples) {
      report.samples++;
      const seen = new Set<string>();
      for (const m of s.members) {
        if (seen.has(m.ext)) continue;
        seen.add(m.ext);
        report.extensions[m.ext] = (report.extensions[m.ext] ?? 0) + 1;
      }
      if (s.problem) {
        report.problems[s.problem.status] = (report.problems[s.problem.status] ?? 0) + 1;
        if (report.problemSamples.length < maxListed) {
          report.problemSamples.push({ row: s.row, key: s.key, offset: s.offset, ...s.problem });
        }
      }
      opts.onProgress?.({ shardIndex: index, shards: count, shard: url, samples: report.samples, tarBytes: stats.tarBytes });
    }
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    report.status = 'error';
    report.error = isMimicError(e)
      ? { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) }
      : { code: 'E_SOURCE', message: `${url}: ${errorMessage(e)}` };
  }
  if (stats) {
    report.gzip = stats.gzip;
    report.members = stats.members;
    report.tarBytes = stats.tarBytes;
    report.storedBytes = stats.sourceBytes;
    report.skipped = { nonRegular: stats.skippedNonRegular, meta: stats.skippedMeta, noExtension: stats.skippedNoExtension };
    report.repeatedKeys = stats.repeatedKeys;
  }
  report.extensions = sortedRecord(report.extensions);
  return report;
}

function totals(reports: ShardReport[]): InspectTotals {
  const t: InspectTotals = {
    shards: reports.length,
    failedShards: 0,
    samples: 0,
    members: 0,
    tarBytes: 0,
    storedBytes: 0,
    extensions: {},
    skipped: { nonRegular: 0, meta: 0, noExtension: 0 },
    repeatedKeys: 0,
    problems: {},
  };
  for (const r of reports) {
    if (r.status === 'error') t.failedShards++;
    t.samples += r.samples;
    t.members += r.members;
    t.tarBytes += r.tarBytes;
    t.storedBytes += r.storedBytes;
    t.repeatedKeys += r.repeatedKeys;
    t.skipped.nonRegular += r.skipped.nonRegular;
    t.skipped.meta += r.skipped.meta;
    t.skipped.noExtension += r.skipped.noExtension;
    for (const [k, v] of Object.entries(r.extensions)) t.extensions[k] = (t.extensions[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.problems)) t.problems[k] = (t.problems[k] ?? 0) + v;
  }
  t.extensions = sortedRecord(t.extensions);
  t.problems = sortedRecord(t.problems);
  return t;
}

/** Whether every shard was read to its end and no sample has a problem. */
export function isClean(report: InspectReport): boolean {
  return report.total.failedShards === 0 && Object.keys(report.total.problems).length === 0;
}

/**
 * OpenCLIP's sizes.json: `{shard basename: sample count}` for the shards read completely (a broken shard's count
 * would be a guess). Check `basenameCollisions` first: two shards with one basename cannot both be keyed.
 */
export function sizesMap(report: InspectReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of report.shards) {
    if (r.status !== 'ok') continue;
    out[shardBasename(r.shard)] = r.samples;
  }
  return out;
}

/** Write `sizesMap(report)` as OpenCLIP's sizes.json, atomically. Returns how many shards it lists. */
export async function writeSizesFile(path: string, report: InspectReport): Promise<number> {
  const sizes = sizesMap(report);
  await writeFileAtomic(path, JSON.stringify(sizes, null, 2) + '\n');
  return Object.keys(sizes).length;
}

/** Shards whose basenames collide, which a sizes.json cannot hold. */
export function basenameCollisions(urls: string[]): string[] {
  const seen = new Map<string, string>();
  const clashes: string[] = [];
  for (const u of urls) {
    const b = shardBasename(u);
    const prev = seen.get(b);
    if (prev !== undefined) clashes.push(`${prev} and ${u}`);
    else seen.set(b, u);
  }
  return clashes;
}

function sortedRecord(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The human-readable report: one line per shard, the totals, then what went wrong. */
export function formatInspectReport(report: InspectReport): string {
  const rows: string[][] = [['shard', 'samples', 'members', 'bytes', 'extensions (samples)', 'skipped', 'problems', 'status']];
  const fmtExt = (e: Record<string, number>) =>
    Object.entries(e)
      .map(([k, v]) => `${k === '' ? '(empty)' : k}:${v}`)
      .join(' ') || '-';
  const fmtSkipped = (s: ShardReport['skipped']) => {
    const parts = [];
    if (s.nonRegular) parts.push(`non-regular:${s.nonRegular}`);
    if (s.meta) parts.push(`__meta__:${s.meta}`);
    if (s.noExtension) parts.push(`no-ext:${s.noExtension}`);
    return parts.join(' ') || '-';
  };
  const fmtProblems = (p: Record<string, number>, repeated: number) => {
    const parts = Object.entries(p).map(([k, v]) => `${k}:${v}`);
    if (repeated) parts.push(`repeated_key:${repeated}`);
    return parts.join(' ') || '-';
  };
  for (const r of report.shards) {
    rows.push([
      r.name + (r.gzip ? ' (gz)' : ''),
      String(r.samples),
      String(r.members),
      formatBytes(r.tarBytes),
      fmtExt(r.extensions),
      fmtSkipped(r.skipped),
      fmtProblems(r.problems, r.repeatedKeys),
      r.status === 'ok' ? 'ok' : `FAILED (${r.error?.code})`,
    ]);
  }
  const t = report.total;
  rows.push([
    `total (${t.shards} shard${t.shards === 1 ? '' : 's'})`,
    String(t.samples),
    String(t.members),
    formatBytes(t.tarBytes),
    fmtExt(t.extensions),
    fmtSkipped(t.skipped),
    fmtProblems(t.problems, t.repeatedKeys),
    t.failedShards ? `${t.failedShards} failed` : 'ok',
  ]);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c >= 1 && c <= 3 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  const out = [line(rows[0]), ...rows.slice(1, -1).map(line), line(rows[rows.length - 1])];
  out.splice(rows.length - 1, 0, widths.map((w) => '-'.repeat(w)).join('  '));

  const details: string[] = [];
  for (const r of report.shards) {
    if (r.error) {
      details.push(`${r.name}: ${r.error.code}: ${r.error.message}`);
      if (r.error.hint) details.push(`  hint: ${r.error.hint}`);
    }
    for (const p of r.problemSamples) {
      details.push(`${r.name}: row ${p.row} key "${p.key}" (byte ${p.offset}): ${p.status}: ${p.message}`);
    }
    const listed = r.problemSamples.length;
    const all = Object.values(r.problems).reduce((a, b) => a + b, 0);
    if (all > listed) details.push(`${r.name}: ... and ${all - listed} more samples with problems (see --json)`);
  }
  return out.join('\n') + '\n' + (details.length ? '\n' + details.join('\n') + '\n' : '');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
