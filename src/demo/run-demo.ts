/**
 * `mimic demo`: the whole method on real image–caption pairs with known noise, with the library's real parts.
 * Builds the emoji pool (or reuses it), scores it with the shipped bundles through scorePool() (proxies
 * checkpoints against the reference, plus the control references D = −W and a random D), reads the score files
 * back, measures how well each score finds the bad pairs, writes the paper's filters' kept ids with runFilter()
 * and the statistics report with poolStats()/writeReport(). Every stage resumes: the data is reused when its
 * truth file matches, and scorePool() skips the shards whose score files are complete.
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../defaults.js';
import { MimicError, isMimicError } from '../errors.js';
import { runFilter, type FilterSummary } from '../filter/select.js';
import { poolStats } from '../filter/stats.js';
import { writeReport, type ReportFiles } from '../filter/report.js';
import { loadBundle, type Bundle } from '../model/bundle.js';
import { checkPair, type PairCheck } from '../model/lineage.js';
import { scorePool, type ScoreOptions, type ScoreProgress, type ScoreSummary } from '../pipeline/index.js';
import { VERSION } from '../version.js';
import { writeFileAtomic } from '../atomic-file.js';
import { CONTROL_DESCRIPTION, CONTROL_KINDS, writeControlBundle, type ControlKind } from './controls.js';
import { DEMO_DATASET_DEFAULTS, TRUTH_FILE, buildDemoDataset, readDemoTruth, type DemoTruth } from './dataset.js';
import { evaluateDemo, type DemoEvaluation } from './evaluate.js';
import { DEMO_FILTERS, DEMO_SCORES, formatQualityMarkdown, type FilterPart, type FilterSpec, type ScoreSpec } from './quality.js';
import { MEAN_SUFFIX, readDemoScores } from './read-scores.js';

export const DEMO_FORMAT = 'mimic-demo/1';
/** Marks a folder as the demo's own, so that it may replace what it wrote there (and nothing else). */
export const DEMO_MARKER = 'demo.json';

/** The paper's filters whose kept ids the demo writes, by their label in DEMO_FILTERS. */
export const DEMO_SELECTIONS: readonly { name: string; filter: string }[] = [
  { name: 'mimic-top70', filter: 'mimic score (both) top 70%' },
  { name: 'clip-top30-minus-mimic-bottom20', filter: 'CLIP score (reference) top 30% minus mimic (both) bottom 20%' },
];

export interface DemoOptions {
  /** Output folder (default ./mimic-demo). */
  out?: string;
  /** Seed of the pool (order, which captions are replaced, by what) and of the random control direction. */
  seed?: number;
  /** Fraction of pool captions replaced, in [0, 1). */
  noise?: number;
  batchSize?: number;
  /** Also score the controls D = −W and a random D (default true). */
  controls?: boolean;
  /** Use only this many emoji (quick runs and tests). */
  limit?: number;
  samplesPerShard?: number;
  /** Where to resolve the emoji npm packages from (default: this package's node_modules). */
  resolveFrom?: string;
  /** Folder holding the demo bundles (default: the package's models/). */
  modelsDir?: string;
  /** Default cpu: the demo models are tiny (the CPU scores the pool in seconds). */
  device?: string;
  intraOpThreads?: number;
  /** One line per finished step, for a reader. */
  onStep?: (line: string) => void;
  /** The current step's progress, for a progress line. */
  onProgress?: (text: string) => void;
}

export interface DemoSelection {
  name: string;
  /** The filter's label in the quality table. */
  filter: string;
  keep: string[];
  drop: string[];
  dir: string;
  files: { npy: string; uids: string; summary: string };
  kept: number;
  /** Bad pairs among the written ids (from the truth file). */
  keptNoiseRate: number;
  summary: FilterSummary;
}

export interface DemoResult {
  out: string;
  data: { dir: string; reused: boolean; shards: string[]; truthFile: string; truth: Omit<DemoTruth, 'rows'> };
  models: { reference: string; proxies: string[]; final: string; lineage: PairCheck['verdict']; controls: Partial<Record<ControlKind, string>> };
  scores: { run: string; controls: Partial<Record<ControlKind, string>>; summaries: ScoreSummary[] };
  evaluation: DemoEvaluation;
  /** The quality table as markdown (also in OUT/quality.md). */
  table: string;
  selections: DemoSelection[];
  report: ReportFiles;
  /** The same steps with the CLI. */
  commands: string[];
  /** Files written or reused under `out`, relative to it, grouped by what they are. */
  files: Record<string, string[]>;
  seconds: Record<string, number>;
}

/** The package's models/ folder (from src/demo or dist/demo alike). */
export function packageModelsDir(): string {
  return fileURLToPath(new URL('../../models/', import.meta.url));
}

/** `--keep`/`--drop` rules of `mimic filter` that select what a FilterSpec of the quality table selects. */
export function filterRules(spec: FilterSpec): { keep: string[]; drop: string[] } {
  const pct = (x: number) => Number(x.toFixed(6));
  // keepTop/bottom (metrics.ts): top f is value ≥ the (1 − f) percentile, bottom f is value ≤ the f percentile.
  const rule = (p: FilterPart) => (p.side === 'top' ? `${p.column} >= p${pct(100 * (1 - p.fraction))}` : `${p.column} <= p${pct(100 * p.fraction)}`);
  return { keep: spec.keep.map(rule), drop: (spec.drop ?? []).map(rule) };
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const out = resolve(options.out ?? DEFAULTS.demo.out);
  const seed = options.seed ?? DEMO_DATASET_DEFAULTS.seed;
  const noise = options.noise ?? DEMO_DATASET_DEFAULTS.noise;
  const batchSize = options.batchSize ?? DEFAULTS.score.batchSize;
  const withControls = options.controls ?? true;
  const samplesPerShard = options.samplesPerShard ?? DEMO_DATASET_DEFAULTS.samplesPerShard;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new MimicError('E_USAGE', `--seed must be a non-negative integer, got ${seed}`);
  if (!(noise >= 0 && noise < 1)) throw new MimicError('E_USAGE', `--noise must be in [0, 1), got ${noise}`);
  if (!Number.isInteger(batchSize) || batchSize < 2) throw new MimicError('E_USAGE', `--batch-size must be an integer ≥ 2, got ${batchSize}`);
  const step = options.onStep ?? (() => {});
  const progress = options.onProgress ?? (() => {});
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  const seconds: Record<string, number> = {};
  const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await fn();
    seconds[what] = (performance.now() - t0) / 1000;
    return r;
  };

  await claimFolder(out);

  // 1. Data.
  const dataDir = join(out, 'data');
  const scoresDir = join(out, 'scores');
  const controlsDir = join(out, 'controls');
  const selectedDir = join(out, 'selected');
  const reportDir = join(out, 'report');
  const wanted = { seed, noise, limit: options.limit ?? null, samplesPerShard };
  let truth = await reusableTruth(dataDir, wanted);
  const reused = truth !== null;
  if (!truth) {
    // Score files are matched to their shards by size, which a rebuilt pool may share: start the scores afresh.
    for (const d of [scoresDir, controlsDir, selectedDir, reportDir]) await rm(d, { recursive: true, force: true });
    progress('building the demo pool from the emoji packages…');
    const ds = await timed('data', () => buildDemoDataset({
      out: dataDir, seed, noise, samplesPerShard, writeReference: false, force: true,
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
      ...(options.resolveFrom ? { resolveFrom: options.resolveFrom } : {}),
    }));
    truth = ds.truth;
  }
  const shards = truth.poolShards.map((s) => join(dataDir, s));
  const c = truth.counts;
  step(`data    ${c.pool} image–caption pairs: ${truth.poolStyles.join(' and ')} drawings of ${new Set(truth.rows.map((r) => r.hexcode)).size} emoji, ` +
    `captioned with their Unicode names; ${pct(truth.noise)} of the captions replaced (${c.swapped} swapped with another emoji's, ` +
    `${c.corrupted} corrupted). ${reused ? 'Reused' : `Built in ${seconds.data!.toFixed(1)} s`}: ${rel(dataDir)}`);

  // 2. Models.
  const modelsDir = options.modelsDir ?? packageModelsDir();
  const referenceDir = join(modelsDir, DEFAULTS.demo.reference);
  const proxyDirs = DEFAULTS.demo.proxies.map((p) => join(modelsDir, p));
  for (const dir of [referenceDir, ...proxyDirs]) {
    const s = await stat(dir).catch(() => undefined);
    if (!s?.isDirectory()) {
      throw new MimicError('E_USAGE', `the demo model ${dir} is missing`, {
        file: dir,
        hint: 'the demo bundles ship in the repository\'s models/ folder (clone grad-mimic with git); scripts/train_tiny_clip.py rebuilds them',
      });
    }
  }
  const reference = await loadBundle(referenceDir);
  const finalName = DEFAULTS.demo.proxies[DEFAULTS.demo.proxies.length - 1]!;
  const finalProxy = await loadBundle(proxyDirs[proxyDirs.length - 1]!);
  const pair = await checkPair(finalProxy, reference);
  const trainedOn = trainingPool(finalProxy);
  step(`models  reference ${DEFAULTS.demo.reference}: a tiny CLIP trained on clean pairs that share no image with the pool; proxies ` +
    `${DEFAULTS.demo.proxies.join(', ')}: checkpoints of its heads trained on a noisy pool` +
    `${trainedOn ? ` (seed ${trainedOn.seed}, ${pct(trainedOn.noise)} noise)` : ''}, on its frozen encoders.`);
  step(`        ${finalName} vs the reference: ${pair.verdict.message}`);
  if (trainedOn && (trainedOn.seed !== seed || trainedOn.noise !== noise)) {
    step(`        note: this pool (seed ${seed}, ${pct(noise)} noise) has other wrong captions than the one the proxies were trained on ` +
      `(to retrain them: scripts/train_tiny_clip.py)`);
  }

  // 3. Scores.
  const common = {
    shards, batchSize, device: options.device ?? DEFAULTS.demo.device,
    ...(options.intraOpThreads ? { intraOpThreads: options.intraOpThreads } : {}),
  };
  const summaries: ScoreSummary[] = [];
  const main = await timed('score', () => scoreRun({
    ...common, proxies: proxyDirs, reference: referenceDir, out: scoresDir, referenceClipScore: true,
    onProgress: (p) => progress(scoreProgress('scoring', p)),
  }, step, rel));
  summaries.push(main);
  step(`score   ${DEFAULTS.demo.proxies.length} checkpoints × ${c.pool} pairs: mimic score (visual, text, both heads), loss, ` +
    `CLIP score of the proxy and of the reference${main.shards.alreadyDone === main.shards.mine ? ' (already scored)' : ''}: ${rel(scoresDir)}`);

  const controlBundles: Partial<Record<ControlKind, string>> = {};
  const controlRuns: Partial<Record<ControlKind, string>> = {};
  if (withControls) {
    step(`        controls for ${finalName}: ${CONTROL_KINDS.map((k) => CONTROL_DESCRIPTION[k]).join('; ')}, written as reference bundles ` +
      `(${rel(join(out, 'models'))}) and scored like the real one (mimic's lineage check rightly calls D = −W unrelated): ${rel(controlsDir)}`);
    await timed('controls', async () => {
      for (const kind of CONTROL_KINDS) {
        const bundleDir = join(out, 'models', `control-${kind}`);
        await writeControlBundle({ proxy: finalProxy, reference, kind, seed, out: bundleDir });
        const runDir = join(controlsDir, kind);
        summaries.push(await scoreRun({
          ...common, proxies: [`${finalName}=${proxyDirs[proxyDirs.length - 1]!}`], reference: bundleDir, out: runDir,
          onProgress: (p) => progress(scoreProgress(`control ${kind}`, p)),
        }, step, rel));
        controlBundles[kind] = bundleDir;
        controlRuns[kind] = runDir;
      }
    });
  }
  const failedShards = summaries.flatMap((s) => s.failedShards);
  if (failedShards.length) {
    throw new MimicError('E_SCORES', `${failedShards.length} shard(s) could not be scored: ${failedShards.map((f) => `${f.shard}: ${f.error}`).join('; ')}`, {
      hint: 'rerun `mimic demo` to retry them; if it fails again, remove the --out folder to rebuild the data',
    });
  }

  // 4. Quality.
  progress('evaluating…');
  const rows = await readDemoScores({ run: scoresDir, checkpoint: finalName, meanOver: DEFAULTS.demo.proxies, controls: controlRuns });
  const meanLabel = `mimic score, both heads, mean of checkpoints ${DEFAULTS.demo.proxies.map((p) => p.replace(/^demo-proxy-/, '')).join(', ')}`;
  const scores: ScoreSpec[] = [...DEMO_SCORES, { label: meanLabel, column: `mimic_proj_both${MEAN_SUFFIX}`, bad: 'low' }];
  const evaluation = evaluateDemo(rows, truth, { scores, filters: DEMO_FILTERS, seed });
  const table = formatQualityMarkdown(evaluation.report);
  await writeFileAtomic(join(out, 'quality.md'), `# mimic demo: quality of each score at finding the bad pairs\n\n` +
    `Checkpoint ${finalName} (the mean row averages ${DEFAULTS.demo.proxies.join(' and ')}); seed ${seed}, noise ${noise}, batch ${batchSize}.\n\n${table}`);
  await writeFileAtomic(join(out, 'quality.json'), JSON.stringify({ checkpoint: finalName, seed, noise, batchSize, ...evaluation }, null, 2) + '\n');
  const failedRows = Object.entries(evaluation.failed);
  if (failedRows.length || evaluation.unscored) {
    step(`        not scored: ${failedRows.map(([k, v]) => `${v} ${k}`).join(', ') || 'none'}; missing from the scores: ${evaluation.unscored}`);
  }

  // 5. The paper's filters: kept ids.
  const labelOf = new Map(truth.rows.map((r) => [r.uid, r.label]));
  const finalRun = join(scoresDir, finalName);
  const selections: DemoSelection[] = [];
  await timed('filter', async () => {
    for (const sel of DEMO_SELECTIONS) {
      const spec = DEMO_FILTERS.find((f) => f.label === sel.filter);
      if (!spec) throw new Error(`DEMO_SELECTIONS names "${sel.filter}", which DEMO_FILTERS does not define`);
      const { keep, drop } = filterRules(spec);
      const dir = join(selectedDir, sel.name);
      const files = { npy: join(dir, 'uids.npy'), uids: join(dir, 'uids.txt'), summary: join(dir, 'summary.json') };
      progress(`filter ${sel.name}…`);
      const summary = await runFilter({ runs: [finalRun], keep, drop, ...files });
      const kept = (await readFile(files.uids, 'utf8')).split('\n').filter((l) => l.length > 0);
      const bad = kept.filter((u) => labelOf.get(u) !== 'clean').length;
      selections.push({ name: sel.name, filter: sel.filter, keep, drop, dir, files, kept: summary.kept, keptNoiseRate: kept.length ? bad / kept.length : NaN, summary });
    }
  });

  // 6. Statistics report.
  progress('writing the report…');
  const report = await timed('report', async () => writeReport(reportDir, await poolStats({ runs: [finalRun], report: true })));
  progress('');

  const q = (s: string) => (/^[\w./=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const commands = [
    `mimic score ${shards.map((s) => q(rel(s))).join(' ')} ${proxyDirs.map((p) => `--proxy ${q(rel(p))}`).join(' ')} --reference ${q(rel(referenceDir))} ` +
      `--reference-clip-score --batch-size ${batchSize} --out ${q(rel(scoresDir))}`,
    ...selections.map((s) => ['mimic filter', q(rel(finalRun)), ...s.keep.map((k) => `--keep ${q(k)}`), ...s.drop.map((d) => `--drop ${q(d)}`),
      `--npy ${q(rel(s.files.npy))} --uids ${q(rel(s.files.uids))} --summary ${q(rel(s.files.summary))}`].join(' ')),
    `mimic stats ${q(rel(finalRun))} --report ${q(rel(reportDir))}`,
  ];
  const r = (p: string) => relative(out, p);
  const files: Record<string, string[]> = {
    data: [...truth.poolShards.map((s) => r(join(dataDir, s))), r(join(dataDir, TRUTH_FILE))],
    scores: await listFiles(scoresDir, out),
    ...(withControls ? { controls: [...await listFiles(join(out, 'models'), out), ...await listFiles(controlsDir, out)] } : {}),
    quality: ['quality.md', 'quality.json'],
    selected: selections.flatMap((s) => Object.values(s.files).map(r)),
    report: [r(report.html), r(report.json), `${report.svg.length} figures as SVG and PNG`],
  };
  await writeFileAtomic(join(out, DEMO_MARKER), JSON.stringify({
    format: DEMO_FORMAT, toolVersion: VERSION, seed, noise, batchSize, controls: withControls, limit: options.limit ?? null, samplesPerShard,
  }, null, 2) + '\n');
  const { rows: _rows, ...truthFacts } = truth;
  return {
    out,
    data: { dir: dataDir, reused, shards, truthFile: join(dataDir, TRUTH_FILE), truth: truthFacts },
    models: { reference: referenceDir, proxies: proxyDirs, final: finalName, lineage: pair.verdict, controls: controlBundles },
    scores: { run: scoresDir, controls: controlRuns, summaries },
    evaluation, table, selections, report, commands, files, seconds,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(Math.abs(100 * x - Math.round(100 * x)) < 1e-9 ? 0 : 1)}%`;

/**
 * Make `out` the demo's folder: a new or empty folder, or one an earlier demo run marked. Anything else is refused,
 * since the demo replaces its own subfolders when their inputs change.
 */
async function claimFolder(out: string): Promise<void> {
  const s = await stat(out).catch(() => undefined);
  if (s && !s.isDirectory()) throw new MimicError('E_OUTPUT', `${out} is not a folder`, { file: out, hint: 'choose another --out' });
  const entries = s ? await readdir(out) : [];
  if (entries.length > 0 && !entries.includes(DEMO_MARKER)) {
    throw new MimicError('E_OUTPUT', `${out} is not empty and was not written by \`mimic demo\``, {
      file: out,
      hint: 'choose a new or empty folder with --out (the demo replaces its own subfolders when its inputs change)',
    });
  }
  if (!entries.includes(DEMO_MARKER)) await writeFileAtomic(join(out, DEMO_MARKER), JSON.stringify({ format: DEMO_FORMAT, toolVersion: VERSION }) + '\n');
}

/** The truth of an earlier build in `dir` when it was built with these options and its shards are all there. */
async function reusableTruth(dir: string, want: { seed: number; noise: number; limit: number | null; samplesPerShard: number }): Promise<DemoTruth | null> {
  let truth: DemoTruth;
  try {
    truth = await readDemoTruth(join(dir, TRUTH_FILE));
  } catch {
    return null;
  }
  const d = DEMO_DATASET_DEFAULTS;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (truth.seed !== want.seed || truth.noise !== want.noise || (truth.limit ?? undefined) !== (want.limit ?? undefined) ||
    truth.samplesPerShard !== want.samplesPerShard || truth.swapShare !== d.swapShare || truth.referenceOnly !== d.referenceOnly ||
    !same(truth.poolStyles, d.poolStyles) || !same(truth.referenceStyles, d.referenceStyles)) {
    return null;
  }
  for (const s of truth.poolShards) {
    if (!(await stat(join(dir, s)).catch(() => undefined))?.isFile()) return null;
  }
  return truth;
}

/** scorePool, starting the run afresh when its folder holds one with other arguments (e.g. another --batch-size). */
async function scoreRun(opts: ScoreOptions, step: (line: string) => void, rel: (p: string) => string): Promise<ScoreSummary> {
  try {
    return await scorePool(opts);
  } catch (e) {
    if (!isMimicError(e) || e.code !== 'E_OUTPUT' || e.file !== join(opts.out, '_manifests', 'run.json')) throw e;
    step(`        ${rel(opts.out)} held scores made with other arguments or models; scoring again`);
    await rm(opts.out, { recursive: true, force: true });
    return scorePool(opts);
  }
}

function scoreProgress(what: string, p: ScoreProgress): string {
  const total = p.expectedSamples ? `/${p.expectedSamples}` : '';
  return `${what}: ${p.samples}${total} samples, shard ${p.shardsDone}/${p.shardsTotal}, ${p.elapsedS.toFixed(0)} s`;
}

function recipeData(b: Bundle): Record<string, unknown> | undefined {
  const base = (b.manifest.source?.recipe as { base?: { data?: Record<string, unknown> } } | undefined)?.base;
  return base?.data;
}

function trainingPool(b: Bundle): { seed: number; noise: number } | null {
  const d = recipeData(b);
  return d && typeof d.seed === 'number' && typeof d.noise === 'number' ? { seed: d.seed, noise: d.noise } : null;
}

async function listFiles(dir: string, root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(relative(root, p));
    }
  };
  await walk(dir);
  return out.sort();
}
