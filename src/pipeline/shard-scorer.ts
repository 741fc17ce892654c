/**
 * One shard, start to finish: read its samples, prepare them a few at a time, batch the good ones (batches never
 * cross shards, so a shard's scores are reproducible on their own), wait for the scores and write one score
 * file per checkpoint. A shard that breaks part way still gets a file with every sample read before the damage,
 * marked failed in its metadata so that a rerun tries it again.
 */
import { errorMessage, isMimicError } from '../errors.js';
import { log } from '../log.js';
import { MIMIC_LAYERS } from '../mimic/index.js';
import { ScoreTableBuilder, writeScoreFile } from '../scores/writer.js';
import { META } from '../scores/schema.js';
import { openShard, type ShardInfo } from '../wds/index.js';
import { DEFAULTS } from '../defaults.js';
import { BatchBuilder } from './batch-builder.js';
import type { BufferPool } from './buffer-pool.js';
import type { BatchResult, InferenceClient } from './inference-client.js';
import type { InferencePool } from './inference-pool.js';
import type { PrepPool } from './prep-pool.js';
import { orderedMap } from './ordered-map.js';
import { scoreFilePath, type PlannedShard, type RunPlan } from './plan.js';
import { prepareSample, wantedExtensions, type PrepContext, type RowFacts } from './sample-prep.js';

export interface ShardJobContext {
  plan: RunPlan;
  out: string;
  prep: PrepContext;
  batchSize: number;
  decodeConcurrency: number;
  allowPipe: boolean;
  normalizeTable: Float32Array;
  /** How batches carry pixels (uint8: as decoded, normalised by the image encoder's graph). Default float32. */
  pixels?: 'uint8' | 'float32';
  /** Frames of this size go to the encoder unresized (uint8 only; see sample-prep). */
  sourceSize?: { width: number; height: number };
  inference: Pick<InferenceClient | InferencePool, 'submit'>;
  /** Sample preparation threads; without them (or with --uids, applied here) samples are prepared on this thread. */
  prepPool?: PrepPool;
  /** Batch buffers coming back from the inference threads. */
  buffers?: BufferPool;
  signal?: AbortSignal;
  /** Called once per sample read (for progress). */
  onSample?: (status: string) => void;
}

export interface ShardOutcome {
  shard: PlannedShard;
  rows: number;
  statuses: Record<string, number>;
  /** Set when the shard could not be read to its end. */
  error?: string;
}

interface PendingBatch {
  index: number;
  rows: number[];
  size: number;
  result: Promise<BatchResult>;
}

/**
 * Reads and submits the shard's batches; returns a promise that writes its files once the scores are back, so
 * the caller can start reading the next shard while the model finishes this one.
 */
export async function startShard(ctx: ShardJobContext, shard: PlannedShard, shardSeq: number, info: ShardInfo): Promise<() => Promise<ShardOutcome>> {
  const facts: RowFacts[] = [];
  const batches: PendingBatch[] = [];
  const B = ctx.batchSize;
  const image = ctx.prep.image;
  const newBuilder = (index: number) => new BatchBuilder(index, B, image.size, ctx.prep.contextLength, ctx.normalizeTable, ctx.pixels, ctx.sourceSize, ctx.buffers);
  // Made when a sample arrives for it, so that a shard's end leaves no empty builder holding pooled buffers.
  let builder: BatchBuilder | undefined;
  let batchIndex = 0;
  let shardError: string | undefined;

  const submit = async (b: BatchBuilder, fill: number) => {
    const batch = b.finish();
    const { result } = await ctx.inference.submit({
      shardSeq, n: batch.rows.length, fill, pixels: batch.pixels, ids: batch.ids, ...(batch.resizedMask ? { resizedMask: batch.resizedMask } : {}),
    });
    batches.push({ index: batch.index, rows: batch.rows, size: batch.rows.length + fill, result });
  };

  try {
    const opened = await openShard(shard.url, { allowPipe: ctx.allowPipe, wantExtensions: wantedExtensions(ctx.prep), signal: ctx.signal });
    try {
      const pool = ctx.prep.uids ? undefined : ctx.prepPool;
      const prepared = orderedMap(opened.samples, ctx.decodeConcurrency, (s) => (pool ? pool.prepare(s) : prepareSample(s, ctx.prep)));
      for await (const p of prepared) {
        const { pixels: _p, ids: _i, ...rowFacts } = p;
        facts.push(rowFacts);
        ctx.onSample?.(p.status);
        if (p.status !== 'ok') continue;
        builder ??= newBuilder(batchIndex++);
        builder.add(p);
        p.release?.();
        if (builder.full) {
          const full = builder;
          builder = undefined;
          await submit(full, 0);
        }
      }
    } finally {
      opened.close();
    }
  } catch (e) {
    if (!isMimicError(e) || (e.code !== 'E_TAR' && e.code !== 'E_SOURCE')) throw e;
    shardError = errorMessage(e);
    log().warn({ shard: shard.url, err: shardError }, 'shard failed; its readable samples are scored and it will be retried on the next run');
  }
  if (builder) {
    // The last batch borrows its missing negatives from the previous batch's tail (already encoded).
    await submit(builder, batches.length > 0 ? B - builder.length : 0);
  }

  return async () => {
    const results = await Promise.all(batches.map((b) => b.result));
    await writeShardFiles(ctx, shard, info, facts, batches, results, shardError);
    const statuses: Record<string, number> = {};
    for (const f of facts) statuses[f.status] = (statuses[f.status] ?? 0) + 1;
    return { shard, rows: facts.length, statuses, ...(shardError ? { error: shardError } : {}) };
  };
}

async function writeShardFiles(
  ctx: ShardJobContext,
  shard: PlannedShard,
  info: ShardInfo,
  facts: RowFacts[],
  batches: PendingBatch[],
  results: BatchResult[],
  shardError: string | undefined,
): Promise<void> {
  const n = facts.length;
  // Where each row's scores are: its batch and its position in it.
  const slot = new Int32Array(n).fill(-1);
  const batchOf = new Int32Array(n).fill(-1);
  const rowIndex = new Map<number, number>(facts.map((f, i) => [f.row, i]));
  batches.forEach((b, bi) => b.rows.forEach((row, k) => {
    const i = rowIndex.get(row)!;
    batchOf[i] = bi;
    slot[i] = k;
  }));
  const batchCol = new Int32Array(n);
  const batchSizeCol = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (batchOf[i] < 0) continue;
    batchCol[i] = batches[batchOf[i]]!.index;
    batchSizeCol[i] = batches[batchOf[i]]!.size;
  }
  const gather = (pick: (r: BatchResult) => Float32Array | null): Float32Array | null => {
    const col = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (batchOf[i] < 0) continue;
      const src = pick(results[batchOf[i]]!);
      if (!src) return null;
      col[i] = src[slot[i]!]!;
    }
    return col;
  };
  const refClipSim = gather((r) => r.refClipSim);
  const meta: Record<string, string> = {
    [META.toolVersion]: ctx.plan.record.toolVersion,
    [META.shard]: shard.name,
    [META.argsHash]: ctx.plan.record.argsHash,
    [META.fillPolicy]: DEFAULTS.score.fillPolicy,
    [META.inputSize]: info.size === undefined ? '' : String(info.size),
    [META.inputEtag]: info.etag ?? '',
    [META.inputMtime]: info.mtimeMs === undefined ? '' : String(info.mtimeMs),
    [META.shardStatus]: shardError ? 'failed' : 'ok',
    ...(shardError ? { [META.shardError]: shardError } : {}),
  };
  for (const c of ctx.plan.checkpoints) {
    const columns: Record<string, Float32Array | null> = {
      loss: gather((r) => r.scores[c.name]!.loss),
      clip_sim: gather((r) => r.scores[c.name]!.clipSim),
      ref_clip_sim: refClipSim,
    };
    for (const l of MIMIC_LAYERS) {
      columns[`grad_norm_${l}`] = gather((r) => r.scores[c.name]![l].gradNorm);
      columns[`mimic_proj_${l}`] = gather((r) => r.scores[c.name]![l].mimicProj);
      columns[`mimic_cos_${l}`] = gather((r) => r.scores[c.name]![l].mimicCos);
    }
    const table = new ScoreTableBuilder();
    table.addColumns(n, {
      shard: shard.name,
      row: facts.map((f) => f.row),
      key: facts.map((f) => f.key),
      uid: facts.map((f) => f.uid),
      status: facts.map((f) => f.status),
      error: facts.map((f) => f.error),
      batch: batchCol,
      batch_size: batchSizeCol,
      ...columns,
    });
    await writeScoreFile(scoreFilePath(ctx.out, c.name, shard.name), table.finish(), { ...meta, [META.checkpoint]: c.name });
  }
}
