/** `mimic inspect SHARDS...`: flags to options, the report to stdout, the verdict to the exit status. */
import type { Command } from 'commander';
import { EXIT, MimicError } from '../errors.js';
import { log } from '../log.js';
import {
  basenameCollisions,
  expandShardSpecs,
  formatInspectReport,
  inspectShards,
  isClean,
  writeSizesFile,
} from '../wds/index.js';
import { action, type CliContext } from './action.js';
import { checkInt } from './parse.js';
import { shortCount } from './progress.js';

interface InspectFlags {
  json?: boolean;
  sizes?: string;
  allowPipe?: boolean;
  problems: string;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('inspect')
    .description(
      'read WebDataset shards and report samples, members, extensions, bytes and problems, per shard and in total',
    )
    .argument('<shards...>', 'shard paths, globs, brace patterns ({000..099}), lists joined by "::", URLs, s3://, pipe:CMD, -')
    .option('--json', 'print the report as JSON')
    .option('--sizes <file>', "write OpenCLIP's sizes.json ({shard basename: sample count}) for the shards read completely")
    .option('--allow-pipe', 'allow pipe:CMD shards (they run a shell command)')
    .option('--problems <n>', 'problem samples listed per shard (all are counted)', '20')
    .addHelpText(
      'after',
      '\nExit status: 0 when every shard was read to its end and no sample has a problem, 1 otherwise, 2 for bad arguments.',
    )
    .action(action(ctx, run));
}

async function run(ctx: CliContext, specs: string[], flags: InspectFlags): Promise<number> {
  const maxProblemSamples = checkInt('--problems', flags.problems);
  const urls = await expandShardSpecs(specs, { allowPipe: flags.allowPipe });
  if (flags.sizes) {
    const clashes = basenameCollisions(urls);
    if (clashes.length > 0) {
      throw new MimicError('E_USAGE', `--sizes needs distinct shard basenames, but these share one: ${clashes.slice(0, 3).join('; ')}`, {
        hint: 'inspect each folder separately and write one sizes.json per folder',
      });
    }
  }
  const report = await inspectShards(urls, {
    allowPipe: flags.allowPipe,
    maxProblemSamples,
    onProgress: (p) =>
      ctx.progress.update(`inspect ${p.shardIndex + 1}/${p.shards} ${p.shard}: ${shortCount(p.samples)} samples`),
    onShard: (r) => {
      if (r.error) log().error({ shard: r.shard, code: r.error.code }, r.error.message);
    },
  });
  ctx.progress.done();
  process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatInspectReport(report));
  if (flags.sizes) {
    const listed = await writeSizesFile(flags.sizes, report);
    const left = report.total.failedShards;
    log().info(
      { file: flags.sizes, shards: listed },
      left > 0 ? `wrote sizes (${left} failed shard(s) left out)` : 'wrote sizes',
    );
  }
  return isClean(report) ? EXIT.ok : EXIT.partial;
}
