#!/usr/bin/env node
/**
 * Benchmark of `mimic filter` at pool scale: generate ROWS score rows (files of ROWS_PER_FILE rows, with the
 * library's own writer, into a temporary folder), then run the paper's two-rule filter with percentiles
 *   --keep "clip_score >= p70" --drop "mimic_visual < p20"
 * in a fresh child process (so its peak RSS is the filter's alone), once writing only the summary and once also
 * exporting the DataComp .npy of the kept uids. Reports rows/s and peak RSS (getrusage maxrss).
 *
 * Usage: node scripts/bench-filter.mjs [ROWS=100000000] [--rows-per-file 10000] [--dir DIR] [--keep-files]
 * Needs the build (npm run build). The files take ~150 bytes per row on disk.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
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
  const [, runDir, outDir, withNpy] = args;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const s = await runFilter({
    runs: [runDir],
    keep: ['clip_score >= p70'],
    drop: ['mimic_visual < p20'],
    summary: join(outDir, 'summary.json'),
    ...(withNpy === '1' ? { npy: join(outDir, 'subset.npy'), tmpDir: outDir } : {}),
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const ru = process.resourceUsage();
  console.log(JSON.stringify({ seconds, cpuSeconds, rows: s.rows.pool, kept: s.kept, passes: s.passes, passSeconds: s.pass_seconds, percentiles: s.percentiles, maxRssMiB: ru.maxRSS / 1024 }));
  process.exit(0);
}

let rows = 100_000_000;
let perFile = 10_000;
let dir = null;
let keep = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--rows-per-file') perFile = Number(args[++i]);
  else if (args[i] === '--dir') dir = args[++i];
  else if (args[i] === '--keep-files') keep = true;
  else rows = Number(args[i].replace(/_/g, ''));
}
if (!(rows > 0 && perFile > 0)) {
  console.error('usage: bench-filter.mjs [ROWS] [--rows-per-file N] [--dir DIR] [--keep-files]');
  process.exit(2);
}

const { ScoreTableBuilder, writeScoreFile } = await import(join(dist, 'scores/writer.js'));
const { FLOAT_COLUMNS, META } = await import(join(dist, 'scores/schema.js'));

const base = dir ?? mkdtempSync(join(tmpdir(), 'mimic-bench-filter-'));
const runDir = join(base, 'run');
const files = Math.ceil(rows / perFile);
console.log(`machine: ${cpus()[0].model}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}`);
console.log(`generating ${rows.toLocaleString()} rows in ${files} files of ${perFile} rows under ${runDir}`);

// Generation: typed-array fill of the builder (random scores, ~1% failed rows, batches of 256).
const tg = Date.now();
let seed = 12345;
const rand = () => {
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
};
for (let f = 0; f < files; f++) {
  const n = Math.min(perFile, rows - f * perFile);
  const shard = `pool/${String(Math.floor(f / 1000)).padStart(3, '0')}/${String(f).padStart(8, '0')}.tar`;
  const hex = randomBytes(16 * n).toString('hex');
  const uid = new Array(n);
  const key = new Array(n);
  const status = new Array(n);
  const rowIdx = new Uint32Array(n);
  const batch = new Int32Array(n);
  const bsz = new Int32Array(n).fill(256);
  let allOk = true;
  for (let i = 0; i < n; i++) {
    uid[i] = hex.slice(32 * i, 32 * i + 32);
    key[i] = `${String(f).padStart(8, '0')}${String(i).padStart(5, '0')}`;
    status[i] = rand() < 0.01 ? 'decode_error' : 'ok';
    if (status[i] !== 'ok') allOk = false;
    rowIdx[i] = i;
    batch[i] = i >> 8;
  }
  const cols = { shard, row: rowIdx, key, uid, status: allOk ? 'ok' : status, batch, batch_size: bsz };
  for (const c of FLOAT_COLUMNS) {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = rand() * 2 - 0.5;
    cols[c] = v;
  }
  const b = new ScoreTableBuilder();
  b.addColumns(n, cols);
  await writeScoreFile(join(runDir, 'ck', shard.replace(/\.tar$/, '.arrow')), b.finish(), { [META.shard]: shard });
  if ((f + 1) % 100 === 0 || f + 1 === files) {
    const s = (Date.now() - tg) / 1000;
    process.stdout.write(`\r  ${f + 1}/${files} files, ${(((f + 1) * perFile) / s / 1e6).toFixed(2)} M rows/s`);
  }
}
const genSeconds = (Date.now() - tg) / 1000;
const du = spawnSync('du', ['-sb', runDir], { encoding: 'utf8' }).stdout.split('\t')[0];
console.log(`\ngenerated in ${genSeconds.toFixed(1)} s (${(rows / genSeconds / 1e6).toFixed(2)} M rows/s), ${(Number(du) / 2 ** 30).toFixed(2)} GiB on disk`);

const results = [];
for (const [label, npy] of [['summary only (cold-ish cache)', '0'], ['summary only', '0'], ['summary + DataComp .npy', '1']]) {
  const out = mkdtempSync(join(base, 'out-'));
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', runDir, out, npy], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    console.error(r.stderr);
    process.exit(1);
  }
  const m = JSON.parse(r.stdout.trim().split('\n').pop());
  results.push({ label, ...m });
  console.log(`${label}: ${m.seconds.toFixed(2)} s wall, ${(m.rows / m.seconds / 1e6).toFixed(1)} M rows/s; ${m.cpuSeconds.toFixed(2)} s CPU, ${(m.rows / m.cpuSeconds / 1e6).toFixed(1)} M rows per CPU-second (${m.passes.length} passes: ${m.passes.join(', ')}), peak RSS ${m.maxRssMiB.toFixed(0)} MiB, kept ${m.kept.toLocaleString()}`);
}
console.log(JSON.stringify({ rows, files, perFile, genSeconds, results }, null, 1));
if (!keep && !dir) rmSync(base, { recursive: true, force: true });
