/**
 * Whether a shard's scores are complete — verified, not assumed: every checkpoint's final file exists, its
 * footer and record batches parse, and its metadata matches this run (arguments hash, row count, the input's
 * size and etag, a clean read of the shard). Anything else is redone.
 */
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { readScoreMeta } from '../scores/reader.js';
import { META } from '../scores/schema.js';
import type { ShardInfo } from '../wds/index.js';
import { scoreFilePath, type PlannedShard, type RunPlan } from './plan.js';

export type ShardFileState = 'done' | 'failed' | 'stale' | 'missing';

export async function scoreFileState(path: string, argsHash: string, info?: ShardInfo): Promise<ShardFileState> {
  let meta;
  try {
    meta = await readScoreMeta(path);
  } catch (e) {
    // readScoreMeta wraps the fs error in an E_SCORES MimicError: the ENOENT is on its cause.
    const cause = (e as { cause?: NodeJS.ErrnoException }).cause;
    return (e as NodeJS.ErrnoException).code === 'ENOENT' || cause?.code === 'ENOENT' || /ENOENT|no such file/i.test(String((e as Error).message))
      ? 'missing'
      : 'stale';
  }
  const m = meta.metadata;
  if (m[META.argsHash] !== argsHash || m[META.rows] !== String(meta.length)) return 'stale';
  if (info?.size !== undefined && m[META.inputSize] !== '' && m[META.inputSize] !== String(info.size)) return 'stale';
  if (info?.etag !== undefined && m[META.inputEtag] !== '' && m[META.inputEtag] !== info.etag) return 'stale';
  if (info?.mtimeMs !== undefined && (m[META.inputMtime] ?? '') !== '' && m[META.inputMtime] !== String(info.mtimeMs)) return 'stale';
  return m[META.shardStatus] === 'ok' ? 'done' : 'failed';
}

export async function isShardDone(plan: RunPlan, out: string, shard: PlannedShard, info: ShardInfo): Promise<boolean> {
  for (const c of plan.checkpoints) {
    if ((await scoreFileState(scoreFilePath(out, c.name, shard.name), plan.record.argsHash, info)) !== 'done') return false;
  }
  return true;
}

/**
 * Remove the temporary files that a killed run of this worker left beside its outputs (`X.arrow.tmp-…`).
 * Only this worker's shards are touched: another worker may be writing its own at this moment.
 */
export async function removeStaleTemps(plan: RunPlan, out: string, shards: PlannedShard[]): Promise<number> {
  const byDir = new Map<string, Set<string>>();
  for (const c of plan.checkpoints) {
    for (const s of shards) {
      const p = scoreFilePath(out, c.name, s.name);
      const set = byDir.get(dirname(p)) ?? new Set<string>();
      set.add(basename(p));
      byDir.set(dirname(p), set);
    }
  }
  let removed = 0;
  for (const [dir, mine] of byDir) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      const i = n.indexOf('.tmp-');
      if (i > 0 && mine.has(n.slice(0, i))) {
        await rm(`${dir}/${n}`, { force: true });
        removed++;
      }
    }
  }
  return removed;
}
