#!/usr/bin/env node
/**
 * Benchmark of `mimic filter` at pool scale: generate ROWS score rows (files of ROWS_PER_FILE rows, with the
 * library's own writer, into a temporary folder), then run the paper's two-rule filter with percentiles
 *   --keep "clip_score >= p70" --drop "mimic_visual < p20"
 * in a fresh child process (so its peak RSS is the filter's alone), once writing only the summary and once also
 * exporting the DataComp .npy of the kept uids. Reports rows/s and peak RSS (getrusage maxrss).
 *
 * Usage: node scripts/bench-filter.mjs [ROWS=100000000] [--rows-per-file 10000] [--dir DIR] [--fresh] [--rm]
 *          [--workers 1,2] [--runs summary,npy]
 * Needs the build (npm run build). The files take ~150 bytes per row on disk (100 M rows: ~14 GiB), so the pool
 * is kept between runs in DIR (default: OS temp folder, mimic-bench-filter-pool-<ROWS>x<ROWS_PER_FILE>) and
 * reused when its marker file says it is complete; generation resumes file by file if it was interrupted.
 * --fresh regenerates it, --rm removes it at the end. --workers lists the worker counts to measure (default:
 * 1 and the number of cores), --runs the cases (summary only, summary + .npy).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
if (!existsSync(join(dist, 'filter/select.js'))) {
  console.error('bench-filter: build first (npm run build)');
  process.exit(2);
}

const args = process.argv.slice(2);

if (args[0] === '--child') {
  // Child: run one filter and print its measurements as JSON.
  const { runFilter } = await import(join(dist, 'filter/select.js'));
  const [, runDir, outDir, withNpy, workers] = args;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const s = await runFilter({
    runs: [runDir],
    keep: ['clip_score >= p70'],
    drop: ['mimic_visual < p20'],
    summary: join(outDir, 'summary.json'),
    workers: Number(workers),
    ...(withNpy === '1' ? { npy: join(outDir, 'subset.npy'), tmpDir: outDir } : {}),
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // process.cpuUsage() counts every thread of the process, workers included.
  const cpu = process.cpuUsage(c0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const ru = process.resourceUsage();
  console.log(JSON.stringify({ seconds, cpuSeconds, rows: s.rows.pool, kept: s.kept, passes: s.passes, passSeconds: s.pass_seconds, percentiles: s.percentiles, rules: s.rules.map((r) => r.matched), npy: s.exports.npy?.uids, maxRssMiB: ru.maxRSS / 1024 }));
  process.exit(0);
}

let rows = 100_000_000;
let perFile = 10_000;
let dir = null;
let fresh = false;
let remove = false;
let workerCounts = [...new Set([1, cpus().length])];
let cases = ['summary', 'npy'];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--rows-per-file') perFile = Number(args[++i]);
  else if (args[i] === '--dir') dir = args[++i];
  else if (args[i] === '--fresh') fresh = true;
  else if (args[i] === '--rm') remove = true;
  else if (args[i] === '--workers') workerCounts = args[++i].split(',').map(Number);
  else if (args[i] === '--runs') cases = args[++i].split(',');
  else rows = Number(args[i].replace(/_/g, ''));
}
if (!(rows > 0 && perFile > 0) || workerCounts.some((w) => !(Number.isInteger(w) && w >= 1)) || cases.some((c) => c !== 'summary' && c !== 'npy')) {
  console.error('usage: bench-filter.mjs [ROWS] [--rows-per-file N] [--dir DIR] [--fresh] [--rm] [--workers 1,2] [--runs summary,npy]');
  process.exit(2);
}

const { ScoreTableBuilder, writeScoreFile } = await import(join(dist, 'scores/writer.js'));
const { FLOAT_COLUMNS, META } = await import(join(dist, 'scores/schema.js'));

const base = dir ?? join(tmpdir(), `mimic-bench-filter-pool-${rows}x${perFile}`);
const runDir = join(base, 'run');
const marker = join(base, 'complete.json');
const files = Math.ceil(rows / perFile);
const machine = `${cpus()[0].model}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}`;
console.log(`machine: ${machine}`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

if (fresh) rmSync(base, { recursive: true, force: true });
let genSeconds = null;
const wanted = { rows, perFile, files, format: 1 };
const have = existsSync(marker) ? JSON.parse(readFileSync(marker, 'utf8')) : null;
if (have && have.rows === rows && have.perFile === perFile && have.format === 1) {
  console.log(`reusing the pool of ${rows.toLocaleString()} rows in ${files} files under ${runDir} (--fresh regenerates it)`);
} else {
  mkdirSync(base, { recursive: true });
  console.log(`generating ${rows.toLocaleString()} rows in ${files} files of ${perFile} rows under ${runDir} (existing complete files are kept)`);
  // Generation: typed-array fill of the builder (random scores, ~1% failed rows, batches of 256). Each file
  // has its own seed, so an interrupted generation resumes with the same scores.
  const tg = Date.now();
  let made = 0;
  for (let f = 0; f < files; f++) {
    const n = Math.min(perFile, rows - f * perFile);
    const shard = `pool/${String(Math.floor(f / 1000)).padStart(3, '0')}/${String(f).padStart(8, '0')}.tar`;
    const path = join(runDir, 'ck', shard.replace(/\.tar$/, '.arrow'));
    if (existsSync(path)) continue;
    let seed = (Math.imul(f + 1, 2654435761) ^ 12345) >>> 0 || 1;
    const rand = () => {
      seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
      return seed / 4294967296;
    };
    const hex = randomBytes(16 * n).toString('hex');
    const uid = new Array(n);
    const key = new Array(n);
    const status = new Array(n);
    const rowIdx = new Uint32Array(n);
    const batch = new Int32Array(n);
    const bsz = new Int32Array(n).fill(256);
    const failed = new Uint8Array(n);
    let allOk = true;
    for (let i = 0; i < n; i++) {
      uid[i] = hex.slice(32 * i, 32 * i + 32);
      key[i] = `${String(f).padStart(8, '0')}${String(i).padStart(5, '0')}`;
      failed[i] = rand() < 0.01 ? 1 : 0;
      status[i] = failed[i] ? 'decode_error' : 'ok';
      if (failed[i]) allOk = false;
      rowIdx[i] = i;
      batch[i] = i >> 8;
    }
    const cols = { shard, row: rowIdx, key, uid, status: allOk ? 'ok' : status, batch, batch_size: bsz };
    for (const c of FLOAT_COLUMNS) {
      const v = new Float32Array(n);
      // Failed rows have no scores (DESIGN §6): NaN here is a null in the file.
      for (let i = 0; i < n; i++) v[i] = failed[i] ? NaN : rand() * 2 - 0.5;
      cols[c] = v;
    }
    const b = new ScoreTableBuilder();
    b.addColumns(n, cols);
    await writeScoreFile(path, b.finish(), { [META.shard]: shard });
    made++;
    if (made % 100 === 0 || f + 1 === files) {
      const s = (Date.now() - tg) / 1000;
      process.stdout.write(`\r  ${f + 1}/${files} files, ${((made * perFile) / s / 1e6).toFixed(2)} M rows/s`);
    }
  }
  genSeconds = (Date.now() - tg) / 1000;
  writeFileSync(marker, JSON.stringify(wanted) + '\n');
  const du = spawnSync('du', ['-sb', runDir], { encoding: 'utf8' }).stdout.split('\t')[0];
  console.log(`\ngenerated ${made} files in ${genSeconds.toFixed(1)} s, ${(Number(du) / 2 ** 30).toFixed(2)} GiB on disk`);
}

const results = [];
const runs = [];
for (const c of cases) {
  for (const w of workerCounts) {
    // The first run of a case warms the page cache for the next; the summary case is also run once cold-ish.
    if (c === 'summary' && runs.length === 0) runs.push({ label: `summary only, ${w} worker(s), first run (cache may be cold)`, npy: '0', w });
    runs.push({ label: `${c === 'npy' ? 'summary + DataComp .npy' : 'summary only'}, ${w} worker(s)`, npy: c === 'npy' ? '1' : '0', w });
  }
}
for (const { label, npy, w } of runs) {
  const out = mkdtempSync(join(base, 'out-'));
  const loadBefore = load();
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', runDir, out, npy, String(w)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) {
    console.error(r.stderr);
    process.exit(1);
  }
  const m = JSON.parse(r.stdout.trim().split('\n').pop());
  results.push({ label, workers: w, loadBefore, ...m });
  const passes = m.passes.map((p) => `${p} ${m.passSeconds[p]?.toFixed(2)} s`).join(', ');
  console.log(`${label}: ${m.seconds.toFixed(2)} s wall, ${(m.rows / m.seconds / 1e6).toFixed(1)} M rows/s; ${m.cpuSeconds.toFixed(2)} s CPU, ${(m.rows / m.cpuSeconds / 1e6).toFixed(1)} M rows per CPU-second (${passes}), peak RSS ${m.maxRssMiB.toFixed(0)} MiB, kept ${m.kept.toLocaleString()}; load average before ${loadBefore}`);
}
const same = results.every((r) => r.kept === results[0].kept && JSON.stringify(r.percentiles) === JSON.stringify(results[0].percentiles));
console.log(same ? 'every run kept the same rows and found the same percentiles' : 'RESULTS DIFFER BETWEEN RUNS');
console.log(JSON.stringify({ machine, rows, files, perFile, genSeconds, loadAfter: load(), results }, null, 1));
if (remove) rmSync(base, { recursive: true, force: true });
if (!same) process.exit(1);
