/**
 * `scorePool()`: the main job. Plans the run, skips shards whose scores are complete, then streams the rest
 * through read → prepare → batch → inference thread → score files, one shard after another with the next
 * shard's reading overlapping the last batches of the previous one. Memory is bounded by the batches in
 * flight (maxBatchesInFlight + 1 being filled), the decode window and the tar reader's read-ahead.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { log } from '../log.js';
import { MimicError, isMimicError } from '../errors.js';
import { orderedMap } from './ordered-map.js';
import { configureSharp, normalizeTableFor } from '../image/index.js';
import { loadClipTokenizer } from '../text/tokenizer.js';
import { shardBasename, shardKind, statShard, type ShardInfo } from '../wds/index.js';
import {
  readWorkerManifest,
  removeAbandonedManifestTemps,
  writeWorkerManifest,
  RUN_FORMAT,
  type ShardRecord,
  type WorkerManifest,
} from '../scores/manifest.js';
import { readScoreFile } from '../scores/reader.js';
import { utf8Values, type Utf8Column } from '../scores/columns.js';
import { VERSION } from '../version.js';
import { DEFAULTS } from '../defaults.js';
import { InferencePool } from './inference-pool.js';
import { BatchBuilder } from './batch-builder.js';
import { BufferPool } from './buffer-pool.js';
import { mainThreadCpuS } from './thread-cpu.js';
import { PrepPool } from './prep-pool.js';
import { expandDevices, parseDevice } from '../model/index.js';
import { availableParallelism } from 'node:os';
import { defaultDecodeConcurrency, defaultPrepWorkers, resolveScoreOptions, type ScoreOptions, type ScoreProgress } from './options.js';
import { planRun, scoreFilePath, type PlannedShard, type RunPlan } from './plan.js';
import { isShardDone, removeStaleTemps } from './resume.js';
import { startShard, type ShardOutcome } from './shard-scorer.js';
import type { PrepContext } from './sample-prep.js';

export interface ScoreSummary {
  out: string;
  workerIndex: number;
  numWorkers: number;
  provider: string;
  shards: { run: number; mine: number; alreadyDone: number; scored: number; failed: number };
  failedShards: { shard: string; error: string }[];
  samples: number;
  statuses: Record<string, number>;
  wallS: number;
  samplesPerS: number;
  /** Planning, checking done shards and loading the models: the wall time before the first sample is read. */
  loadS: number;
  /**
   * Time the inference thread spent running batches. Close to wallS − loadS means the run is model-bound (faster
   * decoding would not help); well below it means the model waits for input (raise --decode-concurrency).
   */
  inferenceBusyS: number;
  /**
   * CPU time of the thread that reads, batches and writes, after loading (Linux only). Close to wallS − loadS
   * means that thread is what holds the run back (more prep threads cannot help; fewer, larger shards might).
   */
  scoringThreadCpuS?: number;
}

/** How often the worker manifest is rewritten: it is a report, the score files are the authority. */
const MANIFEST_INTERVAL_MS = 10_000;

export async function scorePool(options: ScoreOptions): Promise<ScoreSummary> {
  const started = performance.now();
  const o = resolveScoreOptions(options);
  const plan = await planRun(o);
  const n = plan.record.numWorkers;
  for (const c of plan.checkpoints) {
    const v = c.lineage.verdict;
    if (v.level !== 'shares-lineage') log().warn({ checkpoint: c.name, lineage: v.level }, v.message);
  }
  await removeStaleTemps(plan, o.out, plan.mine);
  await removeAbandonedManifestTemps(o.out, o.workerIndex, n);

  const manifest: WorkerManifest = (await readWorkerManifest(o.out, o.workerIndex, n)) ?? {
    format: RUN_FORMAT,
    argsHash: plan.record.argsHash,
    workerIndex: o.workerIndex,
    numWorkers: n,
    toolVersion: VERSION,
    device: o.device,
    provider: '',
    threads: { intraOp: o.intraOpThreads, interOp: o.interOpThreads },
    assigned: plan.mine.map((s) => s.name),
    shards: {},
  };
  // The manifest says what the latest launch used (the score files carry what each shard was scored with).
  manifest.argsHash = plan.record.argsHash;
  manifest.toolVersion = VERSION;
  manifest.device = o.device;
  manifest.threads = { intraOp: o.intraOpThreads, interOp: o.interOpThreads };

  const todo: { shard: PlannedShard; info: ShardInfo }[] = [];
  let alreadyDone = 0;
  const unreachable: MimicError[] = [];
  // A remote shard costs a round trip to stat: a few at a time, in shard order.
  const stats = orderedMap(arrayItems(plan.mine), STAT_CONCURRENCY, async (shard) => ({ shard, ...(await statOrFail(shard.url, o.allowPipe)) }));
  for await (const { shard, info, error } of stats) {
    if (error) {
      unreachable.push(error);
      // Without the source's size and date a complete score file cannot be checked against it; it is kept (the
      // rerun cannot read the shard either), anything else is scored and recorded as failed by the scorer.
      log().warn({ shard: shard.url, err: error.message }, 'cannot reach the shard');
    }
    if (await isShardDone(plan, o.out, shard, info)) {
      alreadyDone++;
      // A launch killed between a shard's last rename and the next manifest write left no record of it.
      if (manifest.shards[shard.name]?.state !== 'done') manifest.shards[shard.name] = await doneShardRecord(plan, o.out, shard);
    } else {
      todo.push({ shard, info });
    }
  }
  if (unreachable.length > 0 && unreachable.length === plan.mine.length && alreadyDone === 0) {
    // Nothing this worker owns can be read: most likely a wrong path or URL, not a passing network failure.
    throw new MimicError('E_SOURCE', `none of this worker's ${plan.mine.length} shard(s) can be read; the first: ${unreachable[0]!.message}`, {
      ...(unreachable[0]!.file ? { file: unreachable[0]!.file } : {}),
      hint: 'check the shard paths or URLs (brace patterns are expanded without checking that the files exist)',
    });
  }
  const summary: ScoreSummary = {
    out: o.out,
    workerIndex: o.workerIndex,
    numWorkers: n,
    provider: '',
    shards: { run: plan.shards.length, mine: plan.mine.length, alreadyDone, scored: 0, failed: 0 },
    failedShards: [],
    samples: 0,
    statuses: {},
    wallS: 0,
    samplesPerS: 0,
    loadS: 0,
    inferenceBusyS: 0,
  };
  log().info({ worker: `${o.workerIndex}/${n}`, shards: plan.mine.length, alreadyDone, todo: todo.length }, 'scoring plan');
  if (todo.length === 0) {
    await writeWorkerManifest(o.out, manifest);
    summary.wallS = (performance.now() - started) / 1000;
    return summary;
  }

  const reference = plan.reference;
  configureSharp();
  const prep: PrepContext = {
    imageKeys: o.imageKeys,
    captionKey: o.captionKey,
    metadataKey: o.metadataKey,
    image: reference.manifest.image,
    decode: { jpegDecoder: o.jpegDecoder === 'wasm' ? 'wasm' : 'libvips' },
    tokenizer: await loadClipTokenizer(reference.paths.vocab),
    contextLength: reference.manifest.text.context_length,
    padId: reference.manifest.text.pad_id,
    uids: plan.uids,
    ...(o.sourceSize ? { sourceSize: o.sourceSize } : {}),
  };
  const devices = await expandDevices(o.device, o.inferenceWorkers);
  // The graph resize takes uint8 frames: a source size makes 'auto' uint8 (and float32 was refused earlier).
  const pixels = o.sourceSize ? 'uint8' : pixelFormatFor(o.pixels, devices[0]!);
  // Threads sharing the CPU share its cores (0 = every core, split between them).
  const cpuThreads = devices.filter((d) => d === 'cpu').length;
  const intraOp = o.intraOpThreads || (cpuThreads > 1 ? Math.max(1, Math.floor(availableParallelism() / cpuThreads)) : 0);
  const buffers = new BufferPool(
    BatchBuilder.bufferSizes(o.batchSize, reference.manifest.image.size, prep.contextLength, pixels, o.sourceSize),
    o.maxBatchesInFlight * devices.length + 1,
  );
  const inference = await InferencePool.start(devices.map((device) => ({
    checkpoints: plan.checkpoints.map((c) => ({ name: c.name, dir: c.bundle.dir })),
    reference: reference.dir,
    referenceClipScore: o.referenceClipScore,
    device,
    intraOpThreads: intraOp,
    interOpThreads: o.interOpThreads,
    pixels,
    precision: o.precision,
    ...(o.sourceSize ? { sourceSize: o.sourceSize } : {}),
  })), o.maxBatchesInFlight, buffers);
  summary.provider = inference.provider;
  manifest.provider = inference.devices;
  log().info({ provider: manifest.provider, pixels, precision: o.precision, checkpoints: plan.checkpoints.map((c) => c.name) }, 'models loaded');
  summary.loadS = (performance.now() - started) / 1000;
  const cpuAtLoad = mainThreadCpuS();

  const expected = await expectedSamples(todo.map((t) => t.shard));
  const progress = (): ScoreProgress => ({
    samples: summary.samples,
    shardsDone: summary.shards.scored,
    shardsTotal: todo.length,
    shardsSkipped: alreadyDone,
    ...(expected === undefined ? {} : { expectedSamples: expected }),
    elapsedS: (performance.now() - started) / 1000,
    statuses: summary.statuses,
  });

  let lastManifestWrite = 0;
  const record = async (outcome: ShardOutcome, force = false) => {
    summary.shards.scored++;
    if (outcome.error) {
      summary.shards.failed++;
      summary.failedShards.push({ shard: outcome.shard.url, error: outcome.error });
    }
    manifest.shards[outcome.shard.name] = {
      shard: outcome.shard.url,
      name: outcome.shard.name,
      state: outcome.error ? 'failed' : 'done',
      rows: outcome.rows,
      statuses: outcome.statuses,
      ...(outcome.error ? { error: outcome.error } : {}),
    };
    if (force || Date.now() - lastManifestWrite > MANIFEST_INTERVAL_MS) {
      await writeWorkerManifest(o.out, manifest);
      lastManifestWrite = Date.now();
    }
    log().info({ shard: outcome.shard.name, rows: outcome.rows, statuses: outcome.statuses }, outcome.error ? 'shard failed' : 'shard scored');
    o.onProgress?.(progress());
  };

  const prepWorkers = o.prepWorkers === 'auto' ? defaultPrepWorkers(devices, o.jpegDecoder) : o.prepWorkers;
  // 'auto': wasm where a thread is there for it (the prep threads), libvips on the scoring thread (prep.decode).
  const prepDecoder = o.jpegDecoder === 'libvips' ? 'libvips' : 'wasm';
  if (prepWorkers > 0 && !plan.uids) log().info({ prepWorkers, jpegDecoder: prepDecoder }, 'sample preparation threads');
  const prepPool = prepWorkers > 0 && !plan.uids ? await PrepPool.start(prepWorkers, {
    imageKeys: prep.imageKeys, captionKey: prep.captionKey, metadataKey: prep.metadataKey, image: prep.image, decode: { jpegDecoder: prepDecoder },
    vocab: reference.paths.vocab, contextLength: prep.contextLength, padId: prep.padId,
    ...(o.sourceSize ? { sourceSize: o.sourceSize } : {}),
  }).catch(async (e) => {
    await inference.close();
    throw e;
  }) : undefined;
  const ctx = {
    plan,
    prepPool,
    buffers,
    out: o.out,
    prep,
    batchSize: o.batchSize,
    decodeConcurrency: o.decodeConcurrency || defaultDecodeConcurrency(prepPool?.size ?? 0),
    allowPipe: o.allowPipe,
    normalizeTable: normalizeTableFor(reference.manifest.image),
    pixels,
    ...(o.sourceSize ? { sourceSize: o.sourceSize } : {}),
    inference,
    signal: o.signal,
    onSample: (status: string) => {
      summary.samples++;
      summary.statuses[status] = (summary.statuses[status] ?? 0) + 1;
      o.onProgress?.(progress());
    },
  };
  // Shard k's files are written while shard k+1 is read; the chain keeps writes (and manifest updates) in order.
  let writes: Promise<void> = Promise.resolve();
  let writeFailed = false;
  try {
    for (const [seq, { shard, info }] of todo.entries()) {
      // A failed write (or batch) ends the run now rather than after every remaining shard was read.
      if (writeFailed) break;
      const finish = await startShard(ctx, shard, seq, info);
      writes = writes.then(async () => record(await finish()));
      writes.catch(() => {
        writeFailed = true;
      });
    }
    await writes;
  } finally {
    await inference.close();
    await prepPool?.close();
  }
  await writeWorkerManifest(o.out, manifest);
  summary.wallS = (performance.now() - started) / 1000;
  summary.samplesPerS = summary.samples / summary.wallS;
  summary.inferenceBusyS = inference.busyMs / 1000;
  const cpuAtEnd = mainThreadCpuS();
  if (cpuAtLoad !== undefined && cpuAtEnd !== undefined) summary.scoringThreadCpuS = cpuAtEnd - cpuAtLoad;
  return summary;
}

/** Shards stat'ed at once while planning (each remote one is a request). */
const STAT_CONCURRENCY = 8;

/** The shard's size and date, or the error that says why it cannot be reached (other errors are bugs: thrown). */
async function statOrFail(url: string, allowPipe: boolean): Promise<{ info: ShardInfo; error?: MimicError }> {
  try {
    return { info: await statShard(url, { allowPipe }) };
  } catch (e) {
    if (isMimicError(e) && e.code === 'E_SOURCE') return { info: { url }, error: e };
    throw e;
  }
}

async function* arrayItems<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** uint8 or float32 batches on a resolved device: 'auto' is uint8 on CUDA and DEFAULTS.score.cpuPixels on the CPU. */
function pixelFormatFor(pixels: 'auto' | 'uint8' | 'float32', device: string): 'uint8' | 'float32' {
  if (pixels !== 'auto') return pixels;
  return parseDevice(device).kind === 'cuda' ? 'uint8' : DEFAULTS.score.cpuPixels;
}

/** The manifest record of a shard found done: rows and statuses from its first checkpoint's score file. */
async function doneShardRecord(plan: RunPlan, out: string, shard: PlannedShard): Promise<ShardRecord> {
  const file = await readScoreFile(scoreFilePath(out, plan.checkpoints[0]!.name, shard.name), { columns: ['status'] });
  const statuses: Record<string, number> = {};
  for (const st of utf8Values(file.columns.status as Utf8Column)) statuses[st!] = (statuses[st!] ?? 0) + 1;
  return { shard: shard.url, name: shard.name, state: 'done', rows: file.length, statuses };
}

/** Samples expected, from OpenCLIP's sizes.json beside the shards (for the ETA); undefined when unknown. */
async function expectedSamples(shards: PlannedShard[]): Promise<number | undefined> {
  const cache = new Map<string, Record<string, number> | null>();
  let total = 0;
  for (const s of shards) {
    if (shardKind(s.url) !== 'file') return undefined;
    const file = join(dirname(s.url), 'sizes.json');
    if (!cache.has(file)) {
      try {
        cache.set(file, JSON.parse(await readFile(file, 'utf8')) as Record<string, number>);
      } catch {
        cache.set(file, null);
      }
    }
    const count = cache.get(file)?.[shardBasename(s.url)];
    if (typeof count !== 'number') return undefined;
    total += count;
  }
  return total;
}
