/** `mimic stats RUN... [--report DIR]`: quantiles per score column; histograms and mimic/CLIP correlation. */
import type { Command } from 'commander';
import { DEFAULTS } from '../defaults.js';
import { EXIT } from '../errors.js';
import { poolStats } from '../filter/stats.js';
import { formatStatsTable, writeReport } from '../filter/report.js';
import { action, type CliContext } from './action.js';
import { checkChoice, checkNumber } from './parse.js';

interface StatsFlags {
  report?: string;
  aggregate: string;
  tau: string;
  normalize: string;
  bins: string;
  json?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('stats')
    .description('quantiles of every score column of scored runs; --report writes histograms and the mimic/CLIP correlation (SVG, PNG, HTML)')
    .argument('<runs...>', 'score runs: the --out folder of `mimic score` or checkpoint folders')
    .option('--report <dir>', 'write index.html, stats.json and one SVG + PNG per figure into DIR')
    .option('--aggregate <how>', 'combine checkpoints: mean, median, min, max or vote', DEFAULTS.filter.aggregate)
    .option('--tau <t>', 'softmax temperature for vote and --normalize softmax', String(DEFAULTS.filter.tau))
    .option('--normalize <how>', 'per-batch normalisation: none, rank or softmax', DEFAULTS.filter.normalize)
    .option('--bins <n>', 'histogram bins', String(DEFAULTS.filter.reportBins))
    .option('--json', 'print the statistics as JSON')
    .action(action(ctx, async (cctx, runs: string[], f: StatsFlags) => {
      const aggregate = checkChoice('--aggregate', f.aggregate, ['mean', 'median', 'min', 'max', 'vote'] as const);
      const normalize = checkChoice('--normalize', f.normalize, ['none', 'rank', 'softmax'] as const);
      const tau = checkNumber('--tau', f.tau, (n) => n > 0, 'a positive number');
      const bins = checkNumber('--bins', f.bins, (n) => Number.isSafeInteger(n) && n >= 2 && n <= 1000, 'a whole number in 2..1000');
      const st = await poolStats({
        runs, aggregate, normalize, tau, bins, report: f.report !== undefined,
        onProgress: (pass, u, n) => cctx.progress.update(`stats: ${pass} ${u + 1}/${n} files`),
      });
      cctx.progress.done();
      if (f.report !== undefined) {
        const files = await writeReport(f.report, st);
        process.stderr.write(`report: ${files.html} (${files.svg.length} figures as SVG and PNG)\n`);
      }
      process.stdout.write(f.json ? JSON.stringify(st, (k, v) => (k === 'hexbin' ? undefined : v), 2) + '\n' : formatStatsTable(st));
      return EXIT.ok;
    }));
}
