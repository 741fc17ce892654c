/**
 * Run records in OUT/_manifests/. `run.json` is written once, at the first launch: it fixes the worker count and
 * the run's identity (arguments that change scores), so that a resubmitted task (`--array=3,7`, a restarted
 * Kubernetes pod) finds the same shard assignment. Each worker keeps its own `worker-<i>-of-<n>.json`, so
 * two workers never write the same file.
 */
import { link, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MimicError } from '../errors.js';
import { maybeCrash } from '../faults.js';
import { writeFileAtomicSync } from '../atomic-file.js';

export const MANIFEST_DIR = '_manifests';
export const RUN_FORMAT = 'mimic-run/1';

/**
 * What makes two launches the same run: every argument that changes a score file's bytes, and nothing else
 * (bundle paths, shard URLs and the tool's patch version may change between launches; contents may not).
 */
export interface RunIdentity {
  format: typeof RUN_FORMAT;
  scoreFormat: string;
  gradGraphFormat: string;
  checkpoints: { name: string; hash: string }[];
  reference: { hash: string };
  batchSize: number;
  fillPolicy: string;
  imageKeys: string[];
  captionKey: string;
  metadataKey: string;
  referenceClipScore: boolean;
  /** Hash of the sorted uid set of `--uids`, or null. */
  uids: string | null;
  /** Shard names relative to the shards' common prefix: the output layout and the `shard` column. */
  shardNames: string[];
  /** Encoder build when not fp32 (absent for fp32, so runs made before the option keep their identity). */
  precision?: 'fp16';
  /** The source size resized inside the image encoder (--source-size), when used. */
  resizeInGraph?: string;
}

export interface RunRecord extends RunIdentity {
  numWorkers: number;
  argsHash: string;
  toolVersion: string;
  /** Where things were at the first launch (informational: not part of the identity). */
  sources: { shards: string[]; checkpoints: Record<string, string>; reference: string; uidsFile: string | null };
}

export type ShardState = 'done' | 'failed';

export interface ShardRecord {
  shard: string;
  name: string;
  state: ShardState;
  rows: number;
  statuses: Record<string, number>;
  error?: string;
}

export interface WorkerManifest {
  format: typeof RUN_FORMAT;
  argsHash: string;
  workerIndex: number;
  numWorkers: number;
  toolVersion: string;
  device: string;
  provider: string;
  threads: { intraOp: number; interOp: number };
  /** Shards this worker owns, in processing order. */
  assigned: string[];
  shards: Record<string, ShardRecord>;
}

export function runRecordPath(out: string): string {
  return join(out, MANIFEST_DIR, 'run.json');
}

export function workerManifestPath(out: string, index: number, count: number): string {
  return join(out, MANIFEST_DIR, `worker-${index}-of-${count}.json`);
}

async function readJson<T>(path: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new MimicError('E_OUTPUT', `cannot read ${path}: ${(e as Error).message}`, { file: path });
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new MimicError('E_OUTPUT', 'a run manifest is not valid JSON', {
      file: path,
      hint: 'it was edited or damaged; remove the output folder to start over',
    });
  }
}

export function readRunRecord(out: string): Promise<RunRecord | null> {
  return readJson<RunRecord>(runRecordPath(out));
}

/**
 * Create run.json unless it exists, atomically: several workers of a job array may start at once, and exactly
 * one record must win. Returns the record that is on disk afterwards (ours, or the one that was first).
 */
export async function createRunRecordOnce(out: string, record: RunRecord): Promise<RunRecord> {
  const path = runRecordPath(out);
  await mkdir(join(out, MANIFEST_DIR), { recursive: true });
  const tmp = runRecordTempPath(path);
  await writeFile(tmp, JSON.stringify(record, null, 2) + '\n');
  try {
    await link(tmp, path); // fails with EEXIST when another launch was first
    return record;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new MimicError('E_OUTPUT', `cannot create ${path}: ${(e as Error).message}`, { file: path });
    }
    return (await readRunRecord(out))!;
  } finally {
    await rm(tmp, { force: true });
  }
}

export function readWorkerManifest(out: string, index: number, count: number): Promise<WorkerManifest | null> {
  return readJson<WorkerManifest>(workerManifestPath(out, index, count));
}

export async function writeWorkerManifest(out: string, m: WorkerManifest): Promise<void> {
  maybeCrash('before-manifest', workerManifestPath(out, m.workerIndex, m.numWorkers)); // test hook (src/faults.ts)
  writeFileAtomicSync(workerManifestPath(out, m.workerIndex, m.numWorkers), JSON.stringify(m, null, 2) + '\n');
}

/**
 * run.json's temporary name carries the host and process, so that a later launch can tell a temporary file that
 * a killed launch left behind (its process is gone) from one that a starting worker is about to link.
 */
function runRecordTempPath(path: string): string {
  return `${path}.tmp-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

const RUN_TEMP = /^run\.json\.tmp-(.+)-(\d+)-[0-9a-f]{8}$/;
/** A run.json temporary file from another host is removed only when this old (a live one exists for milliseconds). */
const FOREIGN_TEMP_AGE_MS = 10 * 60_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove the temporary files that killed launches left in OUT/_manifests: this worker's own manifest temps (no
 * other process writes them) and abandoned run.json temps. Returns how many were removed.
 */
export async function removeAbandonedManifestTemps(out: string, workerIndex: number, numWorkers: number): Promise<number> {
  const dir = join(out, MANIFEST_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const mine = `worker-${workerIndex}-of-${numWorkers}.json.tmp-`;
  let removed = 0;
  for (const n of names) {
    let abandoned = n.startsWith(mine);
    const m = RUN_TEMP.exec(n);
    if (m) {
      if (m[1] === hostname()) abandoned = Number(m[2]) !== process.pid && !processAlive(Number(m[2]));
      else abandoned = Date.now() - ((await stat(join(dir, n)).catch(() => null))?.mtimeMs ?? Date.now()) > FOREIGN_TEMP_AGE_MS;
    }
    if (abandoned) {
      await rm(join(dir, n), { force: true });
      removed++;
    }
  }
  return removed;
}

/** Every worker manifest present, whatever the worker count (for `mimic status`). */
export async function readAllWorkerManifests(out: string): Promise<WorkerManifest[]> {
  let names: string[];
  try {
    names = await readdir(join(out, MANIFEST_DIR));
  } catch {
    return [];
  }
  const result: WorkerManifest[] = [];
  for (const n of names.filter((n) => /^worker-\d+-of-\d+\.json$/.test(n)).sort()) {
    const m = await readJson<WorkerManifest>(join(out, MANIFEST_DIR, n));
    if (m) result.push(m);
  }
  return result;
}

/** The fields in which two run identities differ, for an error that says what changed. */
/** RunIdentity's optional keys (a run record also holds non-identity keys, which a diff must skip). */
const IDENTITY_KEYS = new Set(['precision', 'resizeInGraph']);

export function diffIdentity(before: RunIdentity, now: RunIdentity): string[] {
  const diffs: string[] = [];
  // Both sides' keys: an optional key present on one side only (e.g. precision) is a difference too.
  const keys = [...new Set([...Object.keys(now), ...Object.keys(before)])].filter((k) => k in now || IDENTITY_KEYS.has(k)) as (keyof RunIdentity)[];
  for (const k of keys) {
    const a = JSON.stringify(before[k]);
    const b = JSON.stringify(now[k]);
    if (a === b) continue;
    if (k === 'shardNames') {
      const was = new Set(before[k] as string[]);
      const is = new Set(now[k] as string[]);
      const added = [...is].filter((s) => !was.has(s));
      const removed = [...was].filter((s) => !is.has(s));
      diffs.push(`${k}: ${added.length} added, ${removed.length} removed` +
        (added.length + removed.length === 0 ? ' (same shards, another order)' : '') +
        (added[0] ? ` (e.g. +${added[0]})` : removed[0] ? ` (e.g. -${removed[0]})` : ''));
    } else {
      diffs.push(`${k}: was ${a}, now ${b}`);
    }
  }
  return diffs;
}
