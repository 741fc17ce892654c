/** `mimic reshard SELECTION (--run OUT | --shards SPEC...) --out DIR`: flags to ReshardOptions, progress, summary. */
import type { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { EXIT, MimicError } from '../errors.js';
import { log } from '../log.js';
import { readRunRecord } from '../scores/manifest.js';
import { expandShardSpecs, shardNames } from '../wds/index.js';
import { reshard, type ReshardSummary } from '../wds/reshard.js';
import { action, type CliContext } from './action.js';
import { choiceFlag, intFlag } from './parse.js';
import { formatDuration, shortCount } from './progress.js';

interface ReshardFlags {
  run?: string;
  shards?: string[];
  out?: string;
  shardSize: number;
  digits: number;
  keyFormat: 'uid' | 'source';
  idKind?: 'uid' | 'key';
  metadataKey: string;
  allowBroken?: boolean;
  allowPipe?: boolean;
  json?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('reshard')
    .description('write the kept samples of a pool as new shards (DataComp resharder layout), byte for byte')
    .argument('<selection>', 'the kept ids: a DataComp .npy, a uid or key text file, or the table of `mimic filter --table` (.arrow/.parquet)')
    .option('--run <out>', 'take the source shards from this `mimic score` run (its _manifests/run.json)')
    .option('--shards <spec...>', 'the source shards (as given to `mimic score`)')
    .option('--out <dir>', 'output folder: {00000000..}.tar, {n}_stats.json, sizes.json, reshard.json')
    .option('--shard-size <n>', 'samples per output shard', intFlag(1), DEFAULTS.reshard.shardSize)
    .option('--digits <n>', 'digits of the output shard numbers', intFlag(1), DEFAULTS.reshard.digits)
    .option('--key-format <how>', 'uid: keys {uid}-{j} as DataComp writes them; source: the source keys', choiceFlag(['uid', 'source'] as const), DEFAULTS.reshard.keyFormat)
    .option('--id-kind <kind>', 'what a text selection lists: uid or key (default: uid when every line is a 32-hex uid)', choiceFlag(['uid', 'key'] as const))
    .option('--metadata-key <ext>', 'the json member with the uid', DEFAULTS.wds.metadataKey)
    .option('--allow-broken', 'write the readable samples of a broken source shard and go on, instead of stopping')
    .option('--allow-pipe', 'allow pipe:CMD source shards (they run a shell command)')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', `
A sample whose id is listed k times is written k times (keys {uid}-0 … {uid}-(k-1), DataComp's behaviour); the
output order is the source order. Rerunning the same command resumes: complete output shards are verified
(size and sha256 from their _stats.json) and kept, the rest is rewritten.
Exit status: 0 done, 1 done but some kept samples could not be written (listed) or a source shard was broken
(--allow-broken), 2 bad arguments, a broken source shard, or an output folder that holds something else.`)
    .action(action(ctx, run));
}

async function sourcesOf(flags: ReshardFlags): Promise<{ sources: string[]; names: string[] }> {
  if (flags.run && flags.shards?.length) throw new MimicError('E_USAGE', 'give the source shards once: --run OUT or --shards SPEC, not both');
  if (flags.run) {
    const record = await readRunRecord(flags.run);
    if (!record) {
      throw new MimicError('E_USAGE', `${flags.run} holds no scoring run (no _manifests/run.json)`, { file: flags.run, hint: 'pass the --out folder of `mimic score`, or --shards SPEC' });
    }
    return { sources: record.sources.shards, names: record.shardNames };
  }
  if (!flags.shards?.length) throw new MimicError('E_USAGE', 'mimic reshard needs the source shards', { hint: 'pass --run OUT (a `mimic score` folder) or --shards SPEC' });
  const sources = await expandShardSpecs(flags.shards, { allowPipe: flags.allowPipe });
  return { sources, names: shardNames(sources) };
}

async function run(ctx: CliContext, selection: string, flags: ReshardFlags): Promise<number> {
  if (!flags.out) throw new MimicError('E_USAGE', 'mimic reshard needs --out DIR');
  const { sources, names } = await sourcesOf(flags);
  const summary = await reshard({
    selection,
    sources,
    sourceNames: names,
    out: flags.out,
    shardSize: flags.shardSize,
    digits: flags.digits,
    keyFormat: flags.keyFormat,
    idKind: flags.idKind,
    metadataKey: flags.metadataKey,
    allowBroken: flags.allowBroken,
    allowPipe: flags.allowPipe,
    onProgress: (p) => ctx.progress.update(
      `reshard: sources ${p.sourcesDone}/${p.sourcesTotal} · read ${shortCount(p.samplesRead)} · written ${shortCount(p.written)} · shards ${p.shards}`,
    ),
  });
  ctx.progress.done();
  log().info({ ...summary }, 'reshard finished');
  process.stdout.write(flags.json ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(summary));
  const skipped = Object.values(summary.skipped).reduce((a, v) => a + v, 0);
  return skipped > 0 || summary.brokenSources.length > 0 ? EXIT.partial : EXIT.ok;
}

export function formatSummary(s: ReshardSummary): string {
  const lines = [
    `wrote ${s.written} sample(s) in ${s.shards} shard(s) (${s.resumedShards} complete before), ${shortCount(s.bytes)}B: ${s.out}`,
    `selection: ${s.selection.ids} ${s.selection.kind} id(s) (${s.selection.distinct} distinct) from ${s.selection.file}`,
  ];
  const skipped = Object.entries(s.skipped);
  if (skipped.length > 0) lines.push(`not written (kept samples that cannot be copied whole): ${skipped.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (s.notFound > 0) lines.push(`warning: ${s.notFound} listed id(s) matched no sample in the ${s.sources} source shard(s)`);
  if (s.renamed > 0) lines.push(`${s.renamed} sample(s) got a -N key suffix (their key was taken in the shard)`);
  if (s.keyedBySource > 0) lines.push(`${s.keyedBySource} sample(s) have no uid and are keyed by their source key`);
  for (const b of s.brokenSources.slice(0, 10)) lines.push(`broken source: ${b.shard}: ${b.error}`);
  lines.push(`time: ${formatDuration(s.wallS)}, ${s.samplesPerS.toFixed(1)} samples/s read`);
  return lines.join('\n') + '\n';
}
