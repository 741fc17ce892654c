/**
 * The filter's outcome does not depend on how it is run: one thread or several, with the histogram window
 * guessed from a sample (hit or miss) or not at all. Every configuration must write the same bytes and the same
 * summary (timings aside); select.test.ts checks the default configuration against numpy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFilter, type FilterOptions, type FilterSummary } from '../../src/filter/select.js';
import { Pool } from '../../src/filter/pool.js';
import { SideStore } from '../../src/filter/side-store.js';
import { MimicError } from '../../src/errors.js';
import { makePool, rng } from './helpers.js';

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-workers-'));
  // Files of many sizes (one empty, one of a single row), failed rows, rows without uid, a tied column.
  await makePool(join(dir, 'one'), { seed: 21, checkpoints: ['ck'], files: [400, 0, 1, 333, 266, 150, 90, 512, 77, 300], tiedColumns: { mimic_proj_text: 5 } });
  // Two checkpoints: aggregation and per-batch normalisation happen in the threads too.
  await makePool(join(dir, 'two'), { seed: 22, checkpoints: ['a', 'b'], files: [200, 150, 1, 260, 90, 120] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Configurations: [label, options]; small tasks so that several threads share even these small pools. */
const CONFIGS: [string, Partial<FilterOptions>][] = [
  ['1 thread, no window', { workers: 1, sampleFiles: 0 }],
  ['1 thread', { workers: 1 }],
  ['2 threads', { workers: 2, taskRows: 300 }],
  ['3 threads, no window', { workers: 3, taskRows: 150, sampleFiles: 0 }],
  ['4 threads, one-file sample', { workers: 4, taskRows: 1, sampleFiles: 1 }],
];

/** The summary without what may differ between runs: timings, thread count, passes, output paths. */
function comparable(s: FilterSummary): unknown {
  const { seconds, pass_seconds, workers, passes, exports, ...rest } = s;
  void seconds; void pass_seconds; void workers; void passes;
  const ex = Object.fromEntries(Object.entries(exports).map(([k, v]) => {
    const { path, ...facts } = v as Record<string, unknown>;
    void path;
    return [k, facts];
  }));
  return { ...rest, exports: ex };
}

async function runAll(base: Partial<FilterOptions> & { runs: string[] }, outputs: string[]): Promise<{ label: string; summary: FilterSummary; files: Record<string, Buffer> }[]> {
  const results = [];
  for (const [label, cfg] of CONFIGS) {
    const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
    mkdirSync(out);
    const paths: Record<string, string> = {};
    for (const o of outputs) paths[o] = join(out, o === 'table-parquet' ? 'table.parquet' : o === 'table' ? 'table.arrow' : `${o}.out`);
    const summary = await runFilter({
      ...base,
      ...cfg,
      ...(paths.npy ? { npy: paths.npy } : {}),
      ...(paths.uids ? { uids: paths.uids } : {}),
      ...(paths.keys ? { keys: paths.keys } : {}),
      ...(paths.table ? { table: paths.table } : {}),
      ...(paths['table-parquet'] ? { table: paths['table-parquet'] } : {}),
      summary: join(out, 'summary.json'),
      sortMemoryBytes: 4096, // spill the .npy sort to run files
      tmpDir: out,
    });
    const files: Record<string, Buffer> = {};
    for (const [o, p] of Object.entries(paths)) files[o] = readFileSync(p);
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).workers).toBe(summary.workers);
    // no temporary files left behind
    expect(readdirSync(out).sort()).toEqual([...Object.values(paths).map((p) => p.slice(out.length + 1)), 'summary.json'].sort());
    results.push({ label, summary, files });
  }
  return results;
}

function expectSame(results: Awaited<ReturnType<typeof runAll>>): void {
  const [first, ...rest] = results;
  for (const r of rest) {
    expect(comparable(r.summary), `${r.label} vs ${first.label}`).toEqual(comparable(first.summary));
    for (const [name, bytes] of Object.entries(first.files)) {
      expect(r.files[name].equals(bytes), `${name}: ${r.label} vs ${first.label}`).toBe(true);
    }
  }
}

describe('results do not depend on threads or on the histogram window', () => {
  it('percentiles, top() with ties, every export', async () => {
    const results = await runAll({
      runs: [join(dir, 'one')],
      keep: ['clip_score >= p70', '(loss <= p99.5) or not (mimic_text > 0.25)', 'top(mimic_text, 33%)'],
      drop: ['mimic_visual < p20'],
    }, ['npy', 'uids', 'keys', 'table']);
    expectSame(results);
    const s = results[0].summary;
    expect(s.kept).toBeGreaterThan(0);
    expect(s.ranks[0].tie_break).toMatch(/uid, shard, row/);
    expect(s.exports.npy).toMatchObject({ sort_run_files: expect.any(Number) });
    expect((s.exports.npy as { sort_run_files: number }).sort_run_files).toBeGreaterThan(1);
    // The thread counts asked for are the ones used; the window decides whether the refine pass runs.
    expect(results.map((r) => r.summary.workers)).toEqual([1, 1, 2, 3, 4]);
    expect(results[0].summary.passes).toEqual(['histogram', 'refine', 'ties', 'select']);
    expect(results[1].summary.passes).toEqual(['histogram', 'ties', 'select']);
    expect(results[3].summary.passes).toEqual(['histogram', 'refine', 'ties', 'select']);
  });

  it('two checkpoints with median aggregation, rank normalisation, Parquet table', async () => {
    const results = await runAll({
      runs: [join(dir, 'two')],
      aggregate: 'median',
      normalize: 'rank',
      keep: ['mimic_visual >= p60', 'bottom(loss, 70%)'],
      drop: ['clip_sim < p10'],
    }, ['uids', 'table-parquet']);
    expectSame(results);
    expect(results[0].summary.rows.status_mismatch_between_checkpoints).toBeGreaterThan(0);
  });

  it('side columns from a SideStore are read by the threads', async () => {
    const pool = Pool.open({ runs: [join(dir, 'one')] });
    const side = new SideStore(new Map([['clip_l14', 'number'], ['basic', 'boolean']] as const), { tmpDir: dir });
    try {
      const r = rng(5);
      pool.units.forEach((_, u) => {
        const n = pool.readUnit(u, { scores: [] }).n;
        const l14 = Float32Array.from({ length: n }, () => (r() < 0.05 ? NaN : Math.fround(r())));
        const basic = Float32Array.from({ length: n }, () => (r() < 0.7 ? 1 : 0));
        side.put(u, n, { clip_l14: l14, basic });
      });
      const results = await runAll({ runs: [join(dir, 'one')], side, keep: ['clip_score >= p50', 'basic'], drop: ['mimic_visual < p30'] }, ['keys', 'table']);
      expectSame(results);
      expect(results[0].summary.inputs.clip_score).toBe('clip_l14');
      expect(results[0].summary.columns.clip_l14.missing_in_ok_rows).toBeGreaterThan(0);
    } finally {
      side.close();
    }
  });

  it('an error in a thread stops the run with the file named, and leaves no output', async () => {
    const bad = join(dir, 'bad');
    await makePool(bad, { seed: 23, checkpoints: ['ck'], files: [100, 100, 100, 100] });
    const victim = join(bad, 'ck', 'shard-02.arrow');
    const bytes = readFileSync(victim);
    // The trailer and footer survive, but the record batch they point at is gone.
    writeFileSync(victim, Buffer.concat([bytes.subarray(0, 600), bytes.subarray(bytes.length - 2000)]));
    for (const workers of [1, 3]) {
      const out = join(dir, `bad-out-${workers}`);
      const e = await runFilter({ runs: [bad], keep: ['clip_score >= p50'], keys: join(out, 'k.txt'), workers, taskRows: 100, sampleFiles: 0 }).catch((x) => x);
      expect(e, `workers ${workers}`).toBeInstanceOf(MimicError);
      expect(e.code).toBe('E_SCORES');
      expect(e.file).toBe(victim);
      expect(existsSync(join(out, 'k.txt'))).toBe(false);
    }
  });
});
