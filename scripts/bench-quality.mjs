#!/usr/bin/env node
// Quality benchmark: does the mimic score find the bad pairs of a pool? Builds the emoji demo pools at several
// noise rates and seeds (src/demo/dataset.ts), trains the reference once and proxies for every pool
// (scripts/train_tiny_clip.py: the reference from a seeded initialisation on the clean reference set, proxies
// with the reference's frozen encoders and heads trained from the same initial heads on the noisy pool), scores
// every pool with the real pipeline (scorePool(), as `mimic score`: the ONNX encoders and the per-sample-gradient
// graph, the reference's CLIP score), scores the controls D = −W and a random D of the same norm the same way (as
// control reference bundles, src/demo/controls.ts), reads the score files back and writes the quality tables
// (AUROC, precision at the true noise rate, kept-set noise after the paper's filters) to stdout and to --out.
//
// The reference is retrained here (deterministic for one thread and one PyTorch build) rather than read from
// models/, because training proxies needs its PyTorch weights; the run says whether it reproduced the committed
// heads bit for bit. Pass --work DIR --reference-checkpoint DIR/reference.pt to reuse an earlier run's reference.
// --full-proxies adds whole CLIPs trained on the 30% pool from the same initialisation (the lineage check);
// --online adds the paper's online stage (batches weighted by softmax(m/τ)) and its held-out retrieval.
//
// Usage: npm run bench:quality -- [--noise 0.1,0.2,0.3,0.5] [--seeds 0,1] [--proxy-steps 50,400]
//        [--out scripts/bench-quality.results.md] [--work DIR] [--keep] [--reference-checkpoint PT] [--full-proxies] [--online]
//        [--no-readme]
// The AUROC and kept-noise tables also replace the block between README.md's bench:quality markers (unless
// --no-readme), so the README shows what the benchmark last measured.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

// The pipeline logs every shard at info level; the benchmark prints its own lines (set MIMIC_LOG_LEVEL to see them).
process.env.MIMIC_LOG_LEVEL ??= 'error';
const { buildDemoDataset, CONTROL_KINDS, DEMO_FILTERS, DEMO_SCORES, evaluateDemo, MEAN_SUFFIX, readDemoScores, writeControlBundle } =
  await import('../dist/demo/index.js');
const { scorePool } = await import('../dist/pipeline/index.js');

const REPO = resolve(new URL('..', import.meta.url).pathname);
const { values } = parseArgs({
  options: {
    noise: { type: 'string', default: '0.1,0.2,0.3,0.5' },
    seeds: { type: 'string', default: '0,1' },
    'proxy-steps': { type: 'string', default: '50,400' },
    out: { type: 'string', default: join(REPO, 'scripts', 'bench-quality.results.md') },
    work: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'reference-checkpoint': { type: 'string' },
    'full-proxies': { type: 'boolean', default: false },
    online: { type: 'boolean', default: false },
    threads: { type: 'string', default: '1' },
    'no-readme': { type: 'boolean', default: false },
  },
});
const noises = values.noise.split(',').map(Number);
const seeds = values.seeds.split(',').map(Number);
/** Checkpoints of the --full-proxies run. */
const FULL_STEPS = [100, 400];
const proxySteps = values['proxy-steps'].split(',').map(Number).sort((a, b) => a - b);
const work = values.work ?? mkdtempSync(join(os.tmpdir(), 'mimic-bench-quality-'));
mkdirSync(work, { recursive: true });
const log = (msg) => process.stderr.write(`${msg}\n`);
const timings = [];
const timed = async (what, fn) => {
  const t0 = performance.now();
  const r = await fn();
  const s = (performance.now() - t0) / 1000;
  timings.push({ what, s });
  log(`  ${what}: ${s.toFixed(1)} s`);
  return r;
};

function python(args) {
  const r = spawnSync('/usr/bin/python3', [join(REPO, 'scripts', 'train_tiny_clip.py'), ...args, '--threads', values.threads], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`train_tiny_clip.py ${args.join(' ')} failed:\n${r.stdout}`);
  return r.stdout;
}

// 1. Pools (images rendered once, shared by every build).
const cache = new Map();
const configs = [];
for (const seed of seeds) {
  for (const noise of noises) {
    const dir = join(work, `pool-n${noise}-s${seed}`);
    const ds = await timed(`build pool noise ${noise} seed ${seed}`, () => buildDemoDataset({ out: dir, noise, seed, imageCache: cache, force: true }));
    configs.push({ noise, seed, dir, ds });
  }
}

// 2. The reference, once (its data does not depend on the noise or the seed).
const refDir = join(work, 'reference');
const refPt = values['reference-checkpoint'] ?? join(work, 'reference.pt');
if (!existsSync(refPt)) {
  const out = await timed('train reference', () => python(['--stage', 'reference', '--data', configs[0].dir, '--out', refDir,
    '--reference-checkpoint', refPt, '--verify', 'skip']));
  log(out.trim().split('\n').map((l) => `    ${l}`).join('\n'));
} else if (!existsSync(join(refDir, 'demo-reference'))) {
  throw new Error(`${refPt} exists but ${refDir}/demo-reference does not: use the --work folder of the run that wrote it`);
}
const committedHeads = join(REPO, 'models', 'demo-reference', 'heads.safetensors');
const reproduced = !existsSync(committedHeads)
  ? 'models/demo-reference is missing'
  : readFileSync(join(refDir, 'demo-reference', 'heads.safetensors')).equals(readFileSync(committedHeads))
    ? 'yes, bit for bit (heads.safetensors identical)'
    : 'NO: the retrained heads differ from models/demo-reference';
const referenceBundle = join(refDir, 'demo-reference');

// 3. Proxies and scores for every pool.
const MEAN = `mimic_proj_both${MEAN_SUFFIX}`;
const extraScores = (steps) => [{ label: `mimic score, both heads, mean of checkpoints ${steps.join(', ')}`, column: MEAN, bad: 'low' }];
const extraFilters = [{ label: 'mimic score (both, mean of checkpoints) top 70%', keep: [{ column: MEAN, side: 'top', fraction: 0.7 }] }];
let scoredRows = 0;
let scoreSeconds = 0;
const BATCH = 256;
/** scorePool, timed; stops the benchmark on a failed shard (the pools are generated, so one means a bug). */
async function score(what, opts) {
  const t0 = performance.now();
  const s = await timed(what, () => scorePool({ batchSize: BATCH, ...opts }));
  scoreSeconds += (performance.now() - t0) / 1000;
  if (s.failedShards.length) throw new Error(`${what}: ${JSON.stringify(s.failedShards)}`);
  return s;
}
async function scoreConfig(cfg, mode, steps, prefix) {
  const modelDir = join(cfg.dir, `models-${mode}`);
  const out = await timed(`train ${mode} proxies noise ${cfg.noise} seed ${cfg.seed}`, () => python(['--stage', 'proxies', '--data', cfg.dir, '--out', modelDir,
    '--reference-checkpoint', refPt, '--proxy-mode', mode, '--proxy-steps', steps.join(','), '--proxy-prefix', prefix, '--verify', 'skip']));
  const zeroShot = [...out.matchAll(/proxy step (\d+): zero-shot top-1 of the pool images: ([\d.]+)/g)].map((m) => `${m[1]}: ${m[2]}`);
  // One run scores every checkpoint (and the reference's CLIP score); each control is a run of the final checkpoint
  // against a control reference bundle. The runs are fresh folders: the pools were rebuilt above.
  const names = steps.map((step) => `${prefix}-${step}`);
  const final = names[names.length - 1];
  const run = join(cfg.dir, `scores-${mode}`);
  rmSync(run, { recursive: true, force: true });
  const main = await score(`score ${mode} proxies ${steps.join(', ')} noise ${cfg.noise} seed ${cfg.seed}`, {
    shards: cfg.ds.poolShards, proxies: names.map((n) => join(modelDir, n)), reference: referenceBundle, out: run, referenceClipScore: true,
  });
  scoredRows += main.samples * names.length;
  const controls = {};
  for (const kind of CONTROL_KINDS) {
    const bundle = join(cfg.dir, `control-${mode}-${kind}`);
    await writeControlBundle({ proxy: join(modelDir, final), reference: referenceBundle, kind, seed: cfg.seed, out: bundle });
    controls[kind] = join(cfg.dir, `scores-${mode}-${kind}`);
    rmSync(controls[kind], { recursive: true, force: true });
    const c = await score(`score ${mode} control ${kind} noise ${cfg.noise} seed ${cfg.seed}`, {
      shards: cfg.ds.poolShards, proxies: [join(modelDir, final)], reference: bundle, out: controls[kind],
    });
    scoredRows += c.samples;
  }
  const rows = await readDemoScores({ run, checkpoint: final, meanOver: names, controls });
  const ev = evaluateDemo(rows, cfg.ds.truth, {
    scores: [...DEMO_SCORES, ...extraScores(steps)],
    filters: [...DEMO_FILTERS, ...extraFilters],
    seed: cfg.seed,
  });
  if (ev.unscored || Object.keys(ev.failed).length) throw new Error(`noise ${cfg.noise} seed ${cfg.seed}: ${ev.unscored} unscored, failed ${JSON.stringify(ev.failed)}`);
  const absMax = (c) => Math.max(...Array.from(c, Math.abs));
  const sorted = Float64Array.from(rows.columns.mimic_proj_both, Math.abs).sort();
  const magnitudes = { negWMax: absMax(rows.columns['mimic_proj_both:neg_w']), realMedian: sorted[sorted.length >> 1] };
  return { ...cfg, report: ev.report, zeroShot, magnitudes };
}

const results = [];
for (const cfg of configs) results.push(await scoreConfig(cfg, 'heads', proxySteps, 'proxy'));
let full = null;
if (values['full-proxies']) {
  const cfg = configs.find((c) => c.noise === 0.3) ?? configs[0];
  full = await scoreConfig(cfg, 'full', FULL_STEPS, 'full-proxy');
}

// 3b. The paper's online stage (optional): heads trained with each batch weighted by softmax(m/τ), against plain
// training and against training on the truly clean pairs only; held-out retrieval on the reference set's pool-style
// drawings of the emoji kept out of the pool.
const ONLINE_TAUS = [0.1, 1];
const ONLINE_CAVEAT = 'Read with care: the held-out images are the reference\'s own training data, so a proxy scores well here by staying close to the reference. The online stage beats even the oracle filter (training on the truly clean pairs only) because its weights pull the heads toward the reference, not only because they drop bad pairs; a test set unseen by both models would separate the two effects.';
const online = [];
if (values.online) {
  for (const cfg of configs.filter((c) => c.seed === seeds[0] && (c.noise === 0.3 || c.noise === 0.5))) {
    const run = async (label, extra) => {
      const out = await timed(`online stage ${label} noise ${cfg.noise}`, () => python(['--stage', 'proxies', '--data', cfg.dir,
        '--out', join(cfg.dir, `models-online-${label.replace(/[^a-z0-9.]+/gi, '_')}`), '--reference-checkpoint', refPt,
        '--proxy-steps', proxySteps.join(','), '--heldout', '--verify', 'skip', ...extra]));
      const last = [...out.matchAll(/proxy step (\d+): held-out retrieval top-1 image->text ([\d.]+) text->image ([\d.]+)/g)].pop();
      const ref = out.match(/reference: held-out retrieval top-1 image->text ([\d.]+) text->image ([\d.]+)/);
      return { label, i2t: Number(last[2]), t2i: Number(last[3]), ref: ref ? [Number(ref[1]), Number(ref[2])] : null };
    };
    const rows = [await run('plain mean', [])];
    for (const tau of ONLINE_TAUS) rows.push(await run(`online, τ = ${tau}`, ['--online-tau', String(tau)]));
    rows.push(await run('clean pairs only (oracle filter)', ['--oracle-clean']));
    online.push({ noise: cfg.noise, seed: cfg.seed, rows });
  }
}

// 4. Tables.
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)));
const cell = (xs, pct = false) => {
  const f = (v) => (pct ? `${(100 * v).toFixed(1)}%` : v.toFixed(3));
  return xs.length > 1 ? `${f(mean(xs))} ± ${pct ? (100 * sd(xs)).toFixed(1) : sd(xs).toFixed(3)}` : f(xs[0]);
};
const byNoise = (fn) => noises.map((n) => results.filter((r) => r.noise === n).map(fn));
const header = (first) => [`| ${first} | ${noises.map((n) => `${Math.round(100 * n)}% noise`).join(' | ')} |`, `|---|${noises.map(() => '---').join('|')}|`];
const scoreLabels = results[0].report.scores.map((s) => s.label);
const filterLabels = results[0].report.filters.map((f) => f.label);
const gitCommit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
  } catch {
    return 'unknown';
  }
})();
const first = results[0];
const aurocTable = [
  ...header('score'),
  ...scoreLabels.map((l) => `| ${l} | ${byNoise((r) => r.report.scores.find((s) => s.label === l).auroc).map((xs) => cell(xs)).join(' | ')} |`),
];
const keptTable = [
  ...header('filter'),
  ...filterLabels.map((l) => `| ${l} | ${byNoise((r) => r.report.filters.find((f) => f.label === l).keptNoiseRate).map((xs) => cell(xs, true)).join(' | ')} |`),
];
const lines = [
  `## Quality benchmark (emoji demo pools)`,
  '',
  `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores (shared with other jobs, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}), ` +
    `Node ${process.version}, commit ${gitCommit}, ${new Date().toISOString().slice(0, 10)}.`,
  `Pools: ${first.ds.truth.counts.pool} pairs each (${first.ds.truth.poolStyles.join(', ')} drawings of ${new Set(first.ds.truth.rows.map((r) => r.hexcode)).size} emoji), ` +
    `half the bad pairs swapped with another emoji's caption, half corrupted; seeds ${seeds.join(', ')} (mean ± sd over seeds). ` +
    `Reference: trained once on the clean reference set (${first.ds.truth.counts.reference} pairs); reproduces models/demo-reference: ${reproduced}. ` +
    `Proxies: the reference's frozen encoders, heads trained from the same initial heads on each pool; scores from the checkpoint at step ${proxySteps[proxySteps.length - 1]} ` +
    `(batch ${BATCH}, scored by \`mimic score\`'s pipeline). Suspicious end: low mimic / CLIP score, high loss / gradient norm.`,
  '',
  '### AUROC of finding the bad pairs (0.5 = chance)',
  '',
  'The D = −W control is degenerate: CLIP\'s loss does not change when a projection is rescaled (the embeddings are normalised), ' +
    `so every per-sample gradient is orthogonal to W and its mimic scores are 0 up to rounding (largest |m| over all pools ` +
    `${Math.max(...results.map((r) => r.magnitudes.negWMax)).toExponential(1)}, where the real direction's median |m| is ` +
    `${Math.min(...results.map((r) => r.magnitudes.realMedian)).toFixed(2)} or more); its row measures how rounding noise ranks the pool. ` +
    'The random D of the same norm is the informative control.',
  '',
  ...aurocTable,
  '',
  '### AUROC by kind of noise, at 30% noise (swapped / corrupted vs clean)',
  '',
  '| score | swapped | corrupted |',
  '|---|---|---|',
  ...scoreLabels.map((l) => {
    const rs = results.filter((r) => r.noise === 0.3);
    if (!rs.length) return null;
    const s = (k) => cell(rs.map((r) => r.report.scores.find((x) => x.label === l)[k]));
    return `| ${l} | ${s('aurocSwapped')} | ${s('aurocCorrupted')} |`;
  }).filter(Boolean),
  '',
  '### Precision at the true noise rate (the k most suspicious pairs, k = the number of bad pairs)',
  '',
  ...header('score'),
  ...scoreLabels.map((l) => `| ${l} | ${byNoise((r) => r.report.scores.find((s) => s.label === l).precisionAtNoiseRate).map((xs) => cell(xs)).join(' | ')} |`),
  '',
  '### Noise left in the kept set after each filter',
  '',
  ...keptTable,
  '',
];
if (full) {
  lines.push(`### Full proxies (a whole CLIP trained from the reference's initialisation on the ${Math.round(100 * full.noise)}% pool, seed ${full.seed}, checkpoint ${FULL_STEPS[FULL_STEPS.length - 1]})`, '',
    '| score | AUROC | precision at noise rate |', '|---|---|---|',
    ...full.report.scores.map((s) => `| ${s.label} | ${s.auroc.toFixed(3)} | ${s.precisionAtNoiseRate.toFixed(3)} |`), '',
    `Zero-shot top-1 of the pool images among their names, per checkpoint: ${full.zeroShot.join(', ')}.`, '');
}
if (online.length) {
  const ref = online[0].rows[0].ref;
  lines.push(`### Online stage: held-out retrieval top-1 (image→text / text→image) after ${proxySteps[proxySteps.length - 1]} steps of heads training`, '',
    `Held-out set: the reference set's ${first.ds.truth.poolStyles.join('/')} drawings of the emoji kept out of the pool (never seen by the proxies; ` +
    `the reference trained on them, and scores ${ref ? `${ref[0].toFixed(3)} / ${ref[1].toFixed(3)}` : '–'}).`, '',
    `| proxy heads trained with | ${online.map((o) => `${Math.round(100 * o.noise)}% noise`).join(' | ')} |`,
    `|---|${online.map(() => '---').join('|')}|`,
    ...online[0].rows.map((r, i) => `| ${r.label} | ${online.map((o) => `${o.rows[i].i2t.toFixed(3)} / ${o.rows[i].t2i.toFixed(3)}`).join(' | ')} |`), '',
    ONLINE_CAVEAT, '');
}
const scoreRate = scoredRows / scoreSeconds;
lines.push(`Zero-shot top-1 of the pool images among their names (heads proxies, noise ${first.noise}, seed ${first.seed}), per checkpoint: ${first.zeroShot.join(', ')}.`,
  `Scoring with scorePool() (decode, tokenize, each checkpoint's encoders and gradient graph, the reference's CLIP score; one more run per control): ` +
  `${scoredRows} rows × checkpoints in ${scoreSeconds.toFixed(1)} s including model loading, ${scoreRate.toFixed(0)} rows/s. Total ${timings.reduce((a, t) => a + t.s, 0).toFixed(0)} s.`, '');
const text = lines.join('\n');
process.stdout.write(text);
const tmp = `${values.out}.tmp-${process.pid}`;
writeFileSync(tmp, text);
renameSync(tmp, values.out);
log(`wrote ${values.out}`);
if (!values['no-readme']) {
  const readme = join(REPO, 'README.md');
  const [start, end] = ['<!-- bench:quality:start -->', '<!-- bench:quality:end -->'];
  const old = readFileSync(readme, 'utf8');
  const a = old.indexOf(start);
  const b = old.indexOf(end);
  if (a < 0 || b < a) {
    log(`README.md has no ${start} … ${end} block: not updated`);
  } else {
    const block = [start,
      `AUROC of finding the bad pairs (0.5 = chance), mean ± sd over seeds ${seeds.join(', ')} (commit ${gitCommit}, ` +
        `${new Date().toISOString().slice(0, 10)}; every table: \`scripts/bench-quality.results.md\`):`,
      '', ...aurocTable, '', 'Noise left in the kept set after each filter:', '', ...keptTable, ''].join('\n');
    const next = old.slice(0, a) + block + old.slice(b);
    writeFileSync(`${readme}.tmp-${process.pid}`, next);
    renameSync(`${readme}.tmp-${process.pid}`, readme);
    log('updated README.md');
  }
}
if (!values.keep && !values.work) rmSync(work, { recursive: true, force: true });
