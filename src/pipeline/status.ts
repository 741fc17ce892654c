/**
 * `mimic status OUT`: where a (possibly multi-worker) run stands, from the files themselves: each shard is done
 * (every checkpoint's file complete and matching the run), failed (read with errors; rerun retries it), partial
 * (some files or temporary files only, or files of other arguments) or missing. The worker that owns each shard
 * is named, so a cluster user knows which task to resubmit.
 */
import { readdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { MimicError } from '../errors.js';
import { readScoreMeta } from '../scores/reader.js';
import { META } from '../scores/schema.js';
import { readAllWorkerManifests, readRunRecord } from '../scores/manifest.js';
import { assignWorker, scoreFilePath } from './plan.js';
import { scoreFileState, type ShardFileState } from './resume.js';

export type ShardRunState = 'done' | 'failed' | 'partial' | 'missing';

export interface ShardStatus {
  name: string;
  url: string;
  worker: number;
  state: ShardRunState;
  error?: string;
}

export interface StatusReport {
  out: string;
  numWorkers: number;
  checkpoints: string[];
  counts: Record<ShardRunState, number>;
  workers: { index: number; counts: Record<ShardRunState, number>; manifest: boolean }[];
  shards: ShardStatus[];
  complete: boolean;
}

const zero = (): Record<ShardRunState, number> => ({ done: 0, failed: 0, partial: 0, missing: 0 });

export async function runStatus(out: string): Promise<StatusReport> {
  const record = await readRunRecord(out);
  if (!record) {
    throw new MimicError('E_OUTPUT', `${out} holds no scoring run (no _manifests/run.json)`, {
      file: out,
      hint: 'pass the --out folder of a `mimic score` run',
    });
  }
  const checkpoints = record.checkpoints.map((c) => c.name);
  const temps = new Set<string>();
  const listed = new Set<string>();
  const shards: ShardStatus[] = [];
  for (const [index, name] of record.shardNames.entries()) {
    const states: ShardFileState[] = [];
    let hasTemp = false;
    let error: string | undefined;
    for (const c of checkpoints) {
      const path = scoreFilePath(out, c, name);
      const dir = dirname(path);
      if (!listed.has(dir)) {
        listed.add(dir);
        for (const n of await readdir(dir).catch(() => [] as string[])) {
          const i = n.indexOf('.tmp-');
          if (i > 0) temps.add(`${dir}/${n.slice(0, i)}`);
        }
      }
      hasTemp ||= temps.has(`${dir}/${basename(path)}`);
      const state = await scoreFileState(path, record.argsHash);
      states.push(state);
      if (state === 'failed') {
        error ??= (await readScoreMeta(path)).metadata[META.shardError] ?? 'failed';
      }
    }
    let state: ShardRunState;
    if (states.every((s) => s === 'done')) state = 'done';
    else if (states.includes('failed')) state = 'failed';
    else if (hasTemp || states.some((s) => s !== 'missing')) state = 'partial';
    else state = 'missing';
    shards.push({ name, url: record.sources.shards[index] ?? name, worker: assignWorker(index, record.numWorkers), state, ...(error ? { error } : {}) });
  }
  const counts = zero();
  const manifests = new Set((await readAllWorkerManifests(out)).filter((m) => m.numWorkers === record.numWorkers).map((m) => m.workerIndex));
  const workers = Array.from({ length: record.numWorkers }, (_, index) => ({ index, counts: zero(), manifest: manifests.has(index) }));
  for (const s of shards) {
    counts[s.state]++;
    workers[s.worker]!.counts[s.state]++;
  }
  return { out, numWorkers: record.numWorkers, checkpoints, counts, workers, shards, complete: counts.done === shards.length };
}

export function formatStatus(r: StatusReport, opts: { list?: number } = {}): string {
  const lines: string[] = [];
  const c = r.counts;
  lines.push(`${r.out}: ${r.shards.length} shards × ${r.checkpoints.length} checkpoint(s) (${r.checkpoints.join(', ')}), ${r.numWorkers} worker(s)`);
  lines.push(`  done ${c.done}  failed ${c.failed}  partial ${c.partial}  missing ${c.missing}${r.complete ? '  — complete' : ''}`);
  if (r.numWorkers > 1) {
    for (const w of r.workers) {
      const wc = w.counts;
      const todo = wc.failed + wc.partial + wc.missing;
      lines.push(`  worker ${w.index}: done ${wc.done}, to do ${todo}${todo > 0 ? ` (failed ${wc.failed}, partial ${wc.partial}, missing ${wc.missing})` : ''}${w.manifest ? '' : ', never started'}`);
    }
  }
  const open = r.shards.filter((s) => s.state !== 'done');
  const limit = opts.list ?? 20;
  for (const s of open.slice(0, limit)) {
    lines.push(`  ${s.state.padEnd(7)} ${s.name} (worker ${s.worker})${s.error ? `: ${s.error}` : ''}`);
  }
  if (open.length > limit) lines.push(`  … and ${open.length - limit} more (--json lists them all)`);
  return lines.join('\n');
}
