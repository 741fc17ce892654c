/** `mimic check --proxy DIR [--reference DIR] [SHARDS...]`: bundle soundness and proxy/reference lineage. */
import type { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { EXIT, MimicError } from '../errors.js';
import { checkBundles, formatCheckReport } from '../model/check.js';
import { poolFeatureAgreement } from '../model/pool-features.js';
import type { Bundle } from '../model/bundle.js';
import { action, type CliContext } from './action.js';
import { checkInt } from './parse.js';

interface CheckFlags {
  proxy: string;
  reference?: string;
  samples: string;
  batchSize: string;
  device: string;
  threads?: string;
  verify: boolean;
  json?: boolean;
  allowPipe?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('check')
    .description('check a bundle (it reproduces its source model) and whether a proxy/reference pair shares a lineage ' +
      '(heads, and the two models\' features on pool samples when shards are given)')
    .argument('[shards...]', 'shard URLs or brace patterns to compare the two models\' features on')
    .requiredOption('--proxy <dir>', 'the proxy bundle (the model being trained)')
    .option('--reference <dir>', 'the reference bundle (the pretrained target)')
    .option('--samples <n>', 'pool samples to compare features on', String(DEFAULTS.model.checkSamples))
    .option('--batch-size <n>', 'encoder batch size for the pool samples', String(DEFAULTS.model.checkBatchSize))
    .option('--device <device>', 'cpu, cuda, cuda:N or auto', DEFAULTS.model.device)
    .option('--threads <n>', 'onnxruntime intra-op threads (default: available cores)')
    .option('--no-verify', 'do not run the bundles\' check inputs through onnxruntime')
    .option('--json', 'print the report as JSON')
    .option('--allow-pipe', 'allow pipe:CMD shard URLs (they run a shell command)')
    .addHelpText('after', '\nExit status: 0 when the bundles are sound (and the pair shares a lineage), 1 when a problem ' +
      'was found (a bundle that does not reproduce its model, or a pair that is unrelated, weakly related or identical), ' +
      '2 for errors.')
    .action(action(ctx, async (cctx, shards: string[], flags: CheckFlags) => {
      const samples = checkInt('--samples', flags.samples, 1);
      const batchSize = checkInt('--batch-size', flags.batchSize, 1);
      const intraOpThreads = flags.threads === undefined ? undefined : checkInt('--threads', flags.threads, 1);
      if (shards.length && !flags.reference) {
        throw new MimicError('E_USAGE', 'comparing features on shards needs --reference too');
      }
      const session = { device: flags.device, ...(intraOpThreads ? { intraOpThreads } : {}) };
      const report = await checkBundles({
        proxy: flags.proxy,
        ...(flags.reference ? { reference: flags.reference } : {}),
        verify: flags.verify,
        ...session,
        ...(shards.length
          ? {
            features: (proxy: Bundle, reference: Bundle) => poolFeatureAgreement(proxy, reference, shards, {
              samples,
              batchSize,
              ...session,
              ...(flags.allowPipe ? { allowPipe: true } : {}),
              onProgress: (n) => cctx.progress.update(`check: encoded ${n}/${samples} pool samples`),
            }),
          }
          : {}),
      });
      cctx.progress.done();
      process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatCheckReport(report));
      return report.problems.length ? EXIT.partial : EXIT.ok;
    }));
}

