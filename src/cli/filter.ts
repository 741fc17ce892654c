/**
 * `mimic filter RUN... --keep EXPR --drop EXPR ... --out DIR`: select rows of scored runs and export them.
 * Flags only: the work is runFilter (src/filter/select.ts).
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { DEFAULTS } from '../defaults.js';
import { EXIT, MimicError } from '../errors.js';
import { runFilter, type FilterSummary } from '../filter/select.js';
import { Pool } from '../filter/pool.js';
import { buildDataCompColumns } from '../filter/datacomp-columns.js';
import type { SideStore } from '../filter/side-store.js';
import { shortCount } from './progress.js';
import { action, type CliContext } from './action.js';
import { checkChoice, checkNumber } from './parse.js';

interface FilterFlags {
  keep: string[];
  drop: string[];
  topK?: string;
  by?: string;
  aggregate: string;
  tau: string;
  normalize: string;
  clipScore?: string;
  metadata?: string[];
  shards?: string[];
  synsets?: string;
  basicFilter?: boolean;
  textFilter?: boolean;
  allowPipe?: boolean;
  out?: string;
  npy?: string;
  uids?: string;
  keys?: string;
  table?: string;
  summary?: string;
  tmpDir?: string;
  sortMemory: string;
  workers?: string;
  allowIncomplete?: boolean;
  json?: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];

const FILTER_COLUMNS = /\b(basic|english|english_prob|text_match)\b/;

export function register(program: Command, ctx: CliContext): void {
  program
    .command('filter')
    .description('select rows of scored runs by rules (thresholds, percentiles, top-k, DataComp filters) and export them')
    .argument('<runs...>', 'score runs: the --out folder of `mimic score` (all checkpoints) or one checkpoint folder')
    .option('--keep <expr>', 'keep rows satisfying EXPR (repeatable; all must hold), e.g. "clip_score >= p70"', collect, [])
    .option('--drop <expr>', 'drop rows satisfying EXPR (repeatable; any drops), e.g. "mimic_visual < p20"', collect, [])
    .option('--top-k <n>', 'keep the n rows with the largest --by column (ties broken by uid, shard, row)')
    .option('--by <column>', 'the column of --top-k')
    .option('--aggregate <how>', 'combine checkpoints: mean, median, min, max or vote', DEFAULTS.filter.aggregate)
    .option('--tau <t>', 'softmax temperature for vote and --normalize softmax', String(DEFAULTS.filter.tau))
    .option('--normalize <how>', 'per-batch normalisation before pool-wide rules: none, rank or softmax', DEFAULTS.filter.normalize)
    .option('--clip-score <src>', 'what clip_score means: ref (ref_clip_sim), l14 or b32 (DataComp metadata); default l14 with --metadata, else ref')
    .option('--metadata <parquet...>', 'DataComp metadata parquet files (CLIP scores, and captions when no --shards)')
    .option('--shards <spec...>', 'the scored shards, for DataComp caption filters on their txt/json')
    .option('--synsets <file>', 'ImageNet-21k synset list for text_match / --text-filter')
    .option('--basic-filter', "keep only rows passing DataComp's basic filter")
    .option('--text-filter', "keep only rows passing DataComp's text-based filter (text_match and english)")
    .option('--allow-pipe', 'allow pipe:CMD shard URLs in --shards')
    .option('--out <dir>', 'output folder: summary.json and the DataComp subset uids.npy (unless given elsewhere)')
    .option('--npy <file>', 'DataComp subset file of the kept uids (sorted, NPY u8,u8)')
    .option('--uids <file>', 'kept uids, one per line')
    .option('--keys <file>', 'kept sample keys, one per line')
    .option('--table <file>', 'kept rows with their columns, .arrow or .parquet')
    .option('--summary <file>', 'JSON summary (default OUT/summary.json)')
    .option('--tmp-dir <dir>', 'folder for external-sort runs and DataComp columns (default: system temp)')
    .option('--sort-memory <MiB>', 'memory per external sort', String(DEFAULTS.filter.sortMemoryBytes / 1024 / 1024))
    .option('--workers <n>', 'threads reading the score files (default: one per available core; 1 = no extra thread)')
    .option('--allow-incomplete', 'filter a run whose shards are not all scored yet (percentiles then describe the shards that are there)')
    .option('--json', 'print the summary as JSON on stdout')
    .addHelpText('after', `
Rules (--keep/--drop): comparisons of columns with numbers or percentiles, combined with and / or / not and
parentheses: "mimic_visual >= p70 and clip_score >= 0.28", "not (loss > p99.5)", "top(clip_score, 30%)",
"bottom(mimic_visual, 1000)". pNN is numpy.percentile(method='linear') over the pool's ok rows, before any
rule. A row is kept when it is ok and satisfies every --keep and no --drop.
Columns: every float score column (loss, clip_sim, ref_clip_sim, grad_norm_*, mimic_proj_*, mimic_cos_*),
aliases mimic_visual|mimic_text|mimic_both (= mimic_proj_*) and clip_score, and with DataComp inputs clip_b32,
clip_l14, basic, english, english_prob, text_match.
Paper combinations: --keep "clip_score >= p70" --drop "mimic_visual < p20";  --keep "mimic_visual >= p70".
Exit status: 0 done, 2 bad rules or inputs.`)
    .action(action(ctx, async (cctx, runs: string[], f: FilterFlags) => {
      const aggregate = checkChoice('--aggregate', f.aggregate, ['mean', 'median', 'min', 'max', 'vote'] as const);
      const normalize = checkChoice('--normalize', f.normalize, ['none', 'rank', 'softmax'] as const);
      const tau = checkNumber('--tau', f.tau, (n) => n > 0, 'a positive number');
      const sortMemoryBytes = Math.floor(checkNumber('--sort-memory', f.sortMemory, (n) => n > 0, 'a positive number of MiB') * 1024 * 1024);
      const workers = f.workers === undefined ? undefined : checkNumber('--workers', f.workers, (n) => Number.isInteger(n) && n >= 1, 'a whole number ≥ 1');
      const clipScore = f.clipScore === undefined ? undefined : checkChoice('--clip-score', f.clipScore, ['ref', 'b32', 'l14'] as const);
      let topK: { n: number; by: string } | undefined;
      if (f.topK !== undefined || f.by !== undefined) {
        if (f.topK === undefined || f.by === undefined) throw new MimicError('E_USAGE', '--top-k and --by go together', { hint: 'e.g. --top-k 1000000 --by mimic_visual' });
        topK = { n: checkNumber('--top-k', f.topK, (n) => Number.isSafeInteger(n) && n >= 0, 'a whole number'), by: f.by };
      }
      const outputs = { npy: f.npy, uids: f.uids, keys: f.keys, table: f.table, summary: f.summary };
      if (f.out !== undefined) {
        outputs.summary ??= join(f.out, 'summary.json');
        if (!f.npy && !f.uids && !f.keys && !f.table) outputs.npy = join(f.out, 'uids.npy');
      }
      if (!Object.values(outputs).some((v) => v !== undefined)) {
        throw new MimicError('E_USAGE', 'nothing to write', { hint: 'give --out DIR (summary.json and uids.npy), or --npy/--uids/--keys/--table/--summary FILE' });
      }
      if (f.table && !/\.(arrow|feather|parquet)$/i.test(f.table)) {
        throw new MimicError('E_USAGE', `--table ${f.table}: the name must end in .arrow or .parquet`);
      }

      if (f.textFilter && !f.synsets) {
        throw new MimicError('E_USAGE', '--text-filter needs --synsets FILE (the ImageNet-21k synset list DataComp matches captions against)');
      }
      const allowIncomplete = f.allowIncomplete === true;
      const pool = Pool.open({ runs, aggregate, tau, normalize, allowIncomplete });
      let side: SideStore | null = null;
      try {
        if ((f.metadata?.length ?? 0) > 0 || (f.shards?.length ?? 0) > 0) {
          const rulesText = [...f.keep, ...f.drop, f.by ?? ''].join(' ');
          const filters = (f.shards?.length ?? 0) > 0 || f.basicFilter === true || f.textFilter === true || FILTER_COLUMNS.test(rulesText) || f.table !== undefined;
          side = await buildDataCompColumns(pool, {
            metadata: f.metadata,
            shards: f.shards,
            filters,
            synsetsFile: f.synsets,
            allowPipe: f.allowPipe,
            tmpDir: f.tmpDir,
            sortMemoryBytes,
            onProgress: (what, done, total) => cctx.progress.update(`filter: DataComp ${what} ${shortCount(done)}${total ? `/${shortCount(total)}` : ''}`),
          });
        } else if (f.basicFilter || f.textFilter || f.synsets) {
          throw new MimicError('E_USAGE', `${f.basicFilter ? '--basic-filter' : f.textFilter ? '--text-filter' : '--synsets'} needs captions: pass --shards (the scored shards) or --metadata (DataComp parquet)`);
        }
        const summary = await runFilter({
          runs, pool, aggregate, tau, normalize, clipScore, topK, allowIncomplete,
          // DataComp's text-based filter is a synset match on an English caption.
          keep: f.textFilter ? [...f.keep, 'text_match and english'] : f.keep,
          drop: f.drop,
          side, basicFilter: f.basicFilter,
          ...outputs,
          tmpDir: f.tmpDir, sortMemoryBytes, workers,
          onProgress: (p) => cctx.progress.update(`filter: ${p.pass} ${p.unit + 1}/${p.units} files, ${shortCount(p.rows)} rows`),
        });
        cctx.progress.done();
        process.stdout.write(f.json ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(summary));
        return EXIT.ok;
      } finally {
        side?.close();
      }
    }));
}

/** A few lines for the terminal; the JSON summary has everything. */
export function formatSummary(s: FilterSummary): string {
  const pct = (a: number, b: number) => (b > 0 ? ` (${((100 * a) / b).toFixed(2)}%)` : '');
  const lines: string[] = [];
  lines.push(`pool: ${s.rows.pool} rows, ${s.rows.ok} ok`);
  const ex = Object.entries(s.rows.excluded_by_status);
  if (ex.length) lines.push(`excluded by status: ${ex.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const p of s.percentiles) lines.push(`${p.column} ${p.percentile} = ${p.value} (over ${p.values} values, ${p.at_value} equal to it)`);
  for (const r of s.ranks) {
    if (r.boundary_value !== null) lines.push(`${r.rule}: boundary ${r.boundary_value}, ${r.tied_at_boundary} tied, ${r.kept_from_ties} of them kept (${r.tie_break})`);
  }
  s.rules.forEach((r, k) => lines.push(`rule ${k} ${r.kind} ${r.rule}: matches ${r.matched}${pct(r.matched, s.rows.ok)}`));
  for (const o of s.overlaps) lines.push(`rules ${o.rules[0]} and ${o.rules[1]} both match ${o.both}`);
  lines.push(`kept: ${s.kept}${pct(s.kept, s.rows.ok)} of the ok rows`);
  for (const [name, e] of Object.entries(s.exports)) lines.push(`wrote ${name}: ${(e as { path: string }).path}`);
  return lines.join('\n') + '\n';
}
