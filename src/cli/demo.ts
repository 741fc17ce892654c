/** `mimic demo [--out DIR]`: flags to DemoOptions, the steps as they finish, the quality table, the files written. */
import type { Command } from 'commander';
import { relative } from 'node:path';
import { DEFAULTS } from '../defaults.js';
import { EXIT } from '../errors.js';
import { log } from '../log.js';
import { DEMO_DATASET_DEFAULTS } from '../demo/dataset.js';
import { runDemo, type DemoResult } from '../demo/run-demo.js';
import { action, type CliContext } from './action.js';
import { intFlag, numberFlag } from './parse.js';

interface DemoFlags {
  out: string;
  noise: number;
  seed: number;
  batchSize: number;
  controls: boolean;
  limit?: number;
  samplesPerShard: number;
  device?: string;
  threads?: number;
  json?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description('the whole method on real image–caption pairs with known noise: build an emoji pool, score it with the shipped models, ' +
      'measure how well each score finds the bad pairs, filter, report')
    .option('--out <dir>', 'output folder (reused and resumed when run again)', DEFAULTS.demo.out)
    .option('--noise <fraction>', 'fraction of the pool captions replaced, in [0, 1)', numberFlag((n) => n >= 0 && n < 1, 'a number in [0, 1)'), DEMO_DATASET_DEFAULTS.noise)
    .option('--seed <n>', 'seed of the pool and of the random control direction', intFlag(0), DEMO_DATASET_DEFAULTS.seed)
    .option('--batch-size <n>', 'samples per batch', intFlag(2), DEFAULTS.score.batchSize)
    .option('--no-controls', 'skip the controls D = −W and a random D')
    .option('--limit <n>', 'use only N emoji (a quick run)', intFlag(2))
    .option('--samples-per-shard <n>', 'samples per pool shard', intFlag(1), DEMO_DATASET_DEFAULTS.samplesPerShard)
    .option('--device <device>', 'cpu, cuda, cuda:N or auto', DEFAULTS.demo.device)
    .option('--threads <n>', 'onnxruntime threads for the encoders (0: every core)', intFlag(0))
    .option('--json', 'print the result as JSON (the steps still go to stderr)')
    .addHelpText('after', `
The pool: the emoji of the npm packages emoji-datasource-twitter (Twemoji, CC BY 4.0) and openmoji (CC BY-SA 4.0),
captioned with their Unicode CLDR names, a known fraction of the captions swapped or corrupted. The models: tiny
CLIPs in models/ (scripts/train_tiny_clip.py). Rerunning resumes; other --seed/--noise rebuild the pool.
Exit status: 0 done, 2 bad arguments, missing emoji packages or an --out folder the demo did not write.`)
    .action(action(ctx, async (cctx, f: DemoFlags, cmd: Command) => {
      // The demo talks through its own lines; the pipeline's info logs would drown them unless asked for.
      if (cmd.getOptionValueSourceWithGlobals('logLevel') === 'default' && !process.env.MIMIC_LOG_LEVEL) {
        log().level = 'warn';
      }
      const say = (line: string) => {
        cctx.progress.clear();
        (f.json ? process.stderr : process.stdout).write(line + '\n');
      };
      say('mimic demo: Grad-Mimic\'s mimic score on real image–caption pairs, some with wrong captions\n');
      const result = await runDemo({
        out: f.out,
        noise: f.noise,
        seed: f.seed,
        batchSize: f.batchSize,
        controls: f.controls,
        samplesPerShard: f.samplesPerShard,
        ...(f.limit !== undefined ? { limit: f.limit } : {}),
        ...(f.device ? { device: f.device } : {}),
        ...(f.threads !== undefined ? { intraOpThreads: f.threads } : {}),
        onStep: say,
        onProgress: (text) => (text ? cctx.progress.update(text) : cctx.progress.clear()),
      });
      cctx.progress.done();
      process.stdout.write(f.json ? JSON.stringify(result, null, 2) + '\n' : formatDemo(result));
      return EXIT.ok;
    }));
}

const pct = (x: number) => (Number.isNaN(x) ? '–' : `${(100 * x).toFixed(1)}%`);

/** What the demo found and where it wrote it. */
export function formatDemo(r: DemoResult): string {
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  const ev = r.evaluation.report;
  const score = (column: string) => ev.scores.find((s) => s.column === column);
  const lines = [
    '',
    `How well each score finds the bad pairs (AUROC: 0.5 is chance, 1 finds them all first), and the noise left after each filter`,
    `(scores of checkpoint ${r.models.final}):`,
    '',
    r.table,
  ];
  const mimic = score('mimic_proj_both');
  const random = score('random');
  const negW = score('mimic_proj_both:neg_w');
  const randomD = score('mimic_proj_both:random');
  if (mimic && random) {
    lines.push(`Mimic score (both heads) ranks a bad pair below a clean one with probability ${mimic.auroc.toFixed(3)} (random order: ` +
      `${random.auroc.toFixed(3)})${randomD ? `; with a random D of the same size instead of W_ref − W it is ${randomD.auroc.toFixed(3)}: ` +
      `the direction toward the reference is what carries the signal` : ''}.`);
    if (negW) {
      lines.push(`D = −W scores every pair 0 up to rounding (CLIP's loss does not change when a projection is rescaled, so each ` +
        `gradient is orthogonal to W): its row ranks rounding noise.`);
    }
    lines.push('');
  }
  lines.push(`Kept ids of the paper's filters (mimic filter; the noise among the written ids, checked against the truth file):`);
  for (const s of r.selections) {
    lines.push(`  ${s.filter}: ${s.kept} of ${ev.rows} pairs kept, ${pct(s.keptNoiseRate)} of them bad (pool: ${pct(ev.noiseRate)}) → ${rel(s.files.npy)}`);
  }
  lines.push('', `The same with the CLI:`, ...r.commands.map((c) => `  ${c}`), '');
  lines.push(`Wrote ${rel(r.out)}/:`);
  const show: [string, string][] = [
    ['data', `${r.data.shards.length} pool shard(s) and truth.json (every pair's label)${r.data.reused ? ', reused' : ''}`],
    ['scores', `score files of ${r.models.proxies.length} checkpoints (mimic score) and the run manifests`],
    ...(r.files.controls ? [['controls', 'the control reference bundles (models/) and their score runs'] as [string, string]] : []),
    ['quality', 'quality.md and quality.json: the table above'],
    ['selected', `${r.selections.map((s) => s.name).join(', ')}: uids.npy (DataComp subset), uids.txt, summary.json`],
    ['report', `index.html, stats.json and ${r.report.svg.length} figures (mimic stats)`],
  ];
  for (const [k, what] of show) lines.push(`  ${(k === 'controls' ? 'models/, controls/' : k === 'quality' ? 'quality.*' : `${k}/`).padEnd(20)} ${what}`);
  lines.push(`Open ${rel(r.report.html)} for the score distributions.`);
  return lines.join('\n') + '\n';
}
