/** `mimic score SHARDS... --proxy DIR --reference DIR --out DIR`: flags to ScoreOptions, progress, summary. */
import type { Command } from 'commander';
import { EXIT, MimicError } from '../errors.js';
import { log } from '../log.js';
import { scorePool, type ScoreProgress, type ScoreSummary } from '../pipeline/index.js';
import { DEFAULTS } from '../defaults.js';
import { action, type CliContext } from './action.js';
import { applyConfigFile } from './config.js';
import { choiceFlag, collect, intFlag, listFlag } from './parse.js';
import { formatDuration, shortCount } from './progress.js';

interface ScoreFlags {
  proxy: string[];
  reference: string;
  out: string;
  batchSize: number;
  uids?: string;
  device: string;
  decodeConcurrency?: number;
  imageKey: string[];
  captionKey: string;
  metadataKey: string;
  referenceClipScore?: boolean;
  workerIndex?: number;
  numWorkers?: number;
  allowPipe?: boolean;
  threads: number;
  pixels?: 'auto' | 'uint8' | 'float32';
  precision?: 'fp32' | 'fp16';
  inferenceWorkers?: number;
  prepWorkers?: number;
  jpegDecoder?: 'auto' | 'wasm' | 'libvips';
  sourceSize?: string;
  config?: string;
  json?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('score')
    .description('score every sample of a pool of shards with one or more proxy checkpoints against a reference')
    .argument('[shards...]', 'shard paths, globs, brace patterns, "::" lists, URLs, s3://, pipe:CMD, -')
    .option('--proxy <dir>', 'a proxy bundle, DIR or NAME=DIR (repeat for several checkpoints)', collect)
    .option('--reference <dir>', 'the reference bundle (the direction is W_ref − W)')
    .option('--out <dir>', 'output folder: OUT/<checkpoint>/<shard>.arrow and OUT/_manifests/')
    .option('--batch-size <n>', 'samples per batch (the contrastive loss couples them)', intFlag(1), DEFAULTS.score.batchSize)
    .option('--uids <file>', 'score only these samples (uids one per line, or a DataComp .npy); the rest are recorded as skipped')
    .option('--device <device>', 'cpu, cuda, cuda:N, several GPUs (cuda:0,1 or cuda:all: one inference thread each, whole shards each) or auto (CUDA when it loads)', DEFAULTS.model.device)
    .option('--decode-concurrency <n>', 'samples prepared at once (default: twice the cores, or 16 per prep thread if more)', intFlag(1))
    .option('--image-key <exts>', 'image members tried in order, comma-separated', listFlag, [...DEFAULTS.wds.imageKeys])
    .option('--caption-key <ext>', 'caption member', DEFAULTS.wds.captionKey)
    .option('--metadata-key <ext>', 'metadata (json) member', DEFAULTS.wds.metadataKey)
    .option('--reference-clip-score', "also run the reference's encoders and record its CLIP score (ref_clip_sim)")
    .option('--worker-index <i>', 'this worker (default: $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX, or 0)', intFlag(0))
    .option('--num-workers <n>', 'workers in the run; fixed at the first launch', intFlag(1))
    .option('--allow-pipe', 'allow pipe:CMD shards (they run a shell command)')
    .option('--threads <n>', 'onnxruntime threads for the encoders (0: every core)', intFlag(0), DEFAULTS.model.intraOpThreads)
    .option('--pixels <format>', 'pixels to the image encoder: uint8 (normalised in the graph), float32 (normalised here) or auto (uint8)', choiceFlag(['auto', 'uint8', 'float32'] as const), DEFAULTS.score.pixels)
    .option('--precision <p>', 'encoders: fp32, or fp16 (the bundles\' fp16 variants, scripts/add-fp16; for GPUs)', choiceFlag(['fp32', 'fp16'] as const), DEFAULTS.score.precision)
    .option('--inference-workers <n>', 'inference threads per device (several on one CPU split its cores)', intFlag(1))
    .option('--source-size <WxH>', 'opt-in for shards of one image size (e.g. 256x256): decode only on the CPU, resize in the image encoder\'s graph (within a few LSB of PIL, not bit-exact); other sizes are resized on the CPU')
    .option('--jpeg-decoder <d>', 'who decodes JPEGs: wasm (same pixels, fewer CPU-seconds, holds its thread), libvips, or auto (wasm on prep threads, libvips on the scoring thread)', choiceFlag(['auto', 'wasm', 'libvips'] as const), DEFAULTS.score.jpegDecoder)
    .option('--prep-workers <n>', 'threads that decode and tokenize (0: the scoring thread does; default from 8 cores: cores − 2 feeding a GPU, else cores/4)', intFlag(0))
    .option('--config <file>', 'a YAML file of these flags (e.g. configs/score-cpu.yaml); flags given here win')
    .option('--json', 'print the final summary as JSON')
    .addHelpText('after', `
Rerunning the same command resumes: shards whose score files are complete (verified) are skipped, the rest are
redone. Exit status: 0 when every shard was read completely, 1 when some shard failed (rerun to retry it),
2 for bad arguments or an output folder that holds another run.`)
    .action(action(ctx, run));
}

function workerIndexFromEnv(): number | undefined {
  for (const name of ['SLURM_ARRAY_TASK_ID', 'JOB_COMPLETION_INDEX']) {
    const v = process.env[name];
    if (v === undefined || v === '') continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new MimicError('E_USAGE', `$${name} is "${v}", not a worker index`);
    return n;
  }
  return undefined;
}

async function run(ctx: CliContext, shards: string[], flags: ScoreFlags, cmd: Command): Promise<number> {
  if (flags.config) {
    applyConfigFile(cmd, flags.config, { shards: { get: () => shards, set: (v) => shards.splice(0, shards.length, ...v) } });
    flags = cmd.opts() as ScoreFlags;
  }
  const missing = [!shards.length && 'SHARDS', !flags.proxy?.length && '--proxy', !flags.reference && '--reference', !flags.out && '--out']
    .filter(Boolean);
  if (missing.length > 0) {
    throw new MimicError('E_USAGE', `mimic score needs ${missing.join(', ')}`, { hint: 'mimic score SHARDS... --proxy DIR --reference DIR --out DIR (see --help)' });
  }
  const summary = await scorePool({
    shards,
    proxies: flags.proxy,
    reference: flags.reference,
    out: flags.out,
    batchSize: flags.batchSize,
    uidsFile: flags.uids,
    device: flags.device,
    decodeConcurrency: flags.decodeConcurrency,
    imageKeys: flags.imageKey,
    captionKey: flags.captionKey,
    metadataKey: flags.metadataKey,
    referenceClipScore: flags.referenceClipScore,
    workerIndex: flags.workerIndex ?? workerIndexFromEnv(),
    numWorkers: flags.numWorkers,
    allowPipe: flags.allowPipe,
    intraOpThreads: flags.threads,
    pixels: flags.pixels,
    precision: flags.precision,
    inferenceWorkers: flags.inferenceWorkers,
    prepWorkers: flags.prepWorkers,
    jpegDecoder: flags.jpegDecoder,
    sourceSize: flags.sourceSize,
    onProgress: (p) => ctx.progress.update(progressLine(p)),
  });
  ctx.progress.done();
  log().info({ ...summary }, 'scoring finished');
  process.stdout.write(flags.json ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(summary, { imageKeys: flags.imageKey, captionKey: flags.captionKey }));
  return summary.shards.failed > 0 ? EXIT.partial : EXIT.ok;
}

export function progressLine(p: ScoreProgress): string {
  const rate = p.samples / Math.max(p.elapsedS, 1e-9);
  const bad = p.samples - (p.statuses.ok ?? 0);
  const eta = p.expectedSamples !== undefined && rate > 0 ? ` · ETA ${formatDuration((p.expectedSamples - p.samples) / rate)}` : '';
  const of = p.expectedSamples !== undefined ? `/${shortCount(p.expectedSamples)}` : '';
  return `score ${shortCount(p.samples)}${of} samples · ${rate.toFixed(1)}/s · shards ${p.shardsDone}/${p.shardsTotal}` +
    (p.shardsSkipped ? ` (+${p.shardsSkipped} done before)` : '') + (bad ? ` · ${shortCount(bad)} not ok` : '') + eta;
}

/** A share of the time after loading, in whole percent (at most 100). */
const busyPct = (busyS: number, s: ScoreSummary) => Math.min(100, (100 * busyS) / (s.wallS - s.loadS)).toFixed(0);

export function formatSummary(s: ScoreSummary, keys?: { imageKeys: string[]; captionKey: string }): string {
  const lines = [
    `scored ${s.shards.scored} shard(s) of ${s.shards.mine} (worker ${s.workerIndex} of ${s.numWorkers}; ${s.shards.alreadyDone} already done)` +
      (s.shards.failed ? `, ${s.shards.failed} failed` : ''),
    `samples: ${s.samples}` + Object.entries(s.statuses).sort((a, b) => b[1] - a[1]).map(([k, v]) => `  ${k} ${v}`).join(''),
    `time: ${formatDuration(s.wallS)}, ${s.samplesPerS.toFixed(1)} samples/s${s.provider ? ` on ${s.provider}` : ''}` +
      (s.wallS - s.loadS > 0 && s.inferenceBusyS > 0
        ? ` (loading ${formatDuration(s.loadS)}; model busy ${busyPct(s.inferenceBusyS, s)}%` +
          (s.scoringThreadCpuS === undefined ? '' : `, scoring thread ${busyPct(s.scoringThreadCpuS, s)}%`) + ' of the rest)'
        : ''),
    `scores: ${s.out}`,
  ];
  for (const f of s.failedShards.slice(0, 10)) lines.push(`failed: ${f.shard}: ${f.error}`);
  // Whole shards without captions or images usually mean other member names, not bad data.
  const missing = (status: string, what: string, flag: string, exts: string[] | undefined) => {
    const n = s.statuses[status] ?? 0;
    if (n > 0 && exts) {
      lines.push(`hint: ${n} sample(s) have no ${what} member (${exts.map((e) => `.${e}`).join(', ')}): if your shards name it ` +
        `otherwise, pass ${flag} (\`mimic inspect\` lists the extensions in a shard)`);
    }
  };
  missing('no_caption', 'caption', '--caption-key', keys && [keys.captionKey]);
  missing('no_image', 'image', '--image-key', keys?.imageKeys);
  return lines.join('\n') + '\n';
}
