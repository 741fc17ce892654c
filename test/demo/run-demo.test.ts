/**
 * `mimic demo` end to end on a small pool: the real launcher (bin/mimic → dist/, built by `npm test` first), then
 * the library on the same folder (a rerun reuses the data and every score file). The controls' score files are
 * checked against the float64 closed form with the control heads on the features of one batch.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlHeads } from '../../src/demo/controls.js';
import { DEMO_FILTERS } from '../../src/demo/quality.js';
import { DEMO_SELECTIONS, filterRules, runDemo, type DemoResult } from '../../src/demo/run-demo.js';
import { preprocessInto } from '../../src/image/preprocess.js';
import { mimicFromFeatures } from '../../src/mimic/reference.js';
import { loadBundle, type BundleHeads } from '../../src/model/bundle.js';
import { openEncoders } from '../../src/model/encoders.js';
import { readScoreFile } from '../../src/scores/reader.js';
import type { Float32Column } from '../../src/scores/columns.js';
import { loadClipTokenizer } from '../../src/text/tokenizer.js';
import { openShard } from '../../src/wds/shard-reader.js';

const BIN = fileURLToPath(new URL('../../bin/mimic', import.meta.url));
const MODELS = fileURLToPath(new URL('../../models/', import.meta.url));
const tmp = mkdtempSync(join(os.tmpdir(), 'mimic-demo-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const OUT = join(tmp, 'demo');
const B = 8;
const ARGS = { limit: 60, samplesPerShard: 25, batchSize: B, seed: 3, noise: 0.3 } as const;

function scoreFiles(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.arrow')) out.set(p, statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return out;
}

describe('mimic demo on a small pool', () => {
  let cli: ReturnType<typeof spawnSync>;
  let filesAfterCli: Map<string, number>;
  let rerun: DemoResult;
  const steps: string[] = [];

  beforeAll(async () => {
    cli = spawnSync(process.execPath, [BIN, 'demo', '--out', OUT, '--limit', String(ARGS.limit), '--samples-per-shard', String(ARGS.samplesPerShard),
      '--batch-size', String(B), '--seed', String(ARGS.seed), '--noise', String(ARGS.noise), '--threads', '1', '--no-progress'], { encoding: 'utf8' });
    filesAfterCli = scoreFiles(OUT);
    rerun = await runDemo({ out: OUT, ...ARGS, intraOpThreads: 1, onStep: (l) => steps.push(l) });
  });

  it('runs from the launcher with exit 0 and prints the table, the kept ids and the files it wrote', () => {
    expect(cli.stderr).not.toMatch(/\n\s+at /);
    expect(cli.status).toBe(0);
    const out = cli.stdout as string;
    for (const row of ['| mimic score, visual head |', '| mimic score, both heads |', '| CLIP score (reference) |', '| CLIP score (proxy) |',
      '| loss (proxy) |', '| random |', '| control: mimic with D = −W (0 up to rounding) |', '| control: mimic with a random D, ‖D‖ kept |',
      '| mimic score (both) top 70% |', '| CLIP score (reference) top 30% minus mimic (both) bottom 20% |']) {
      expect(out).toContain(row);
    }
    expect(out).toMatch(/selected\/mimic-top70\/uids\.npy/);
    expect(out).toMatch(/Wrote .*demo\/:/);
    expect(out).toContain('report/index.html');
    expect(out).toMatch(/mimic filter \S+demo-proxy-400 --keep 'mimic_proj_both >= p30' --npy/);
  });

  it('writes the score runs, the control bundles, the kept ids, the quality table and the report', () => {
    for (const f of ['data/truth.json', 'scores/_manifests/run.json', 'scores/demo-proxy-50', 'scores/demo-proxy-400', 'models/control-neg_w/model.json',
      'models/control-random/heads.safetensors', 'controls/neg_w/demo-proxy-400', 'controls/random/demo-proxy-400', 'quality.md', 'quality.json',
      'report/index.html', 'report/stats.json', 'demo.json', ...DEMO_SELECTIONS.flatMap((s) => ['uids.npy', 'uids.txt', 'summary.json'].map((x) => `selected/${s.name}/${x}`))]) {
      expect(statSync(join(OUT, f)), f).toBeTruthy();
    }
    // Every pool shard scored by both checkpoints and both controls.
    const shards = rerun.data.shards.length;
    expect(shards).toBeGreaterThanOrEqual(2);
    expect(filesAfterCli.size).toBe(4 * shards);
    expect(readFileSync(join(OUT, 'quality.md'), 'utf8')).toContain(rerun.table);
  });

  it('a rerun reuses the data and every score file', () => {
    expect(rerun.data.reused).toBe(true);
    for (const s of rerun.scores.summaries) {
      expect(s.shards.alreadyDone).toBe(s.shards.mine);
      expect(s.shards.scored).toBe(0);
    }
    expect(scoreFiles(OUT)).toEqual(filesAfterCli);
    expect(steps.some((l) => l.startsWith('data') && l.includes('Reused'))).toBe(true);
  });

  it('evaluates every pool pair against the truth', () => {
    const ev = rerun.evaluation;
    const t = rerun.data.truth;
    expect(ev.unscored).toBe(0);
    expect(ev.failed).toEqual({});
    expect(ev.report.rows).toBe(t.counts.pool);
    expect(ev.report.bad).toBe(t.counts.swapped + t.counts.corrupted);
    const columns = ev.report.scores.map((s) => s.column);
    expect(columns).toEqual(expect.arrayContaining(['mimic_proj_visual', 'mimic_proj_text', 'mimic_proj_both', 'clip_sim', 'ref_clip_sim', 'loss',
      'random', 'mimic_proj_both:neg_w', 'mimic_proj_both:random', 'mimic_proj_both:mean']));
    for (const s of ev.report.scores) expect(s.auroc).toBeGreaterThanOrEqual(0);
  });

  it("writes kept ids that are exactly the table's filters: same count, same noise among them", () => {
    for (const sel of rerun.selections) {
      const row = rerun.evaluation.report.filters.find((f) => f.label === sel.filter)!;
      expect(sel.kept).toBe(row.kept);
      expect(sel.keptNoiseRate).toBeCloseTo(row.keptNoiseRate, 12);
      const uids = readFileSync(sel.files.uids, 'utf8').trim().split('\n');
      expect(uids.length).toBe(sel.kept);
      // NPY v1: magic, version, header length, header; then 16 bytes per uid.
      const npy = readFileSync(sel.files.npy);
      expect(npy.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
      expect(npy.length).toBe(10 + npy.readUInt16LE(8) + 16 * sel.kept);
      expect(JSON.parse(readFileSync(sel.files.summary, 'utf8')).kept).toBe(sel.kept);
    }
  });

  it("translates the table's filters into mimic filter rules", () => {
    const rules = (label: string) => filterRules(DEMO_FILTERS.find((f) => f.label === label)!);
    expect(rules('mimic score (both) top 70%')).toEqual({ keep: ['mimic_proj_both >= p30'], drop: [] });
    expect(rules('CLIP score (reference) top 30% minus mimic (both) bottom 20%')).toEqual({ keep: ['ref_clip_sim >= p70'], drop: ['mimic_proj_both <= p20'] });
  });

  it('scores the controls as the closed form does with D = −W and with the random D, on one batch', async () => {
    const proxy = await loadBundle(join(MODELS, 'demo-proxy-400'));
    const reference = await loadBundle(join(MODELS, 'demo-reference'));
    const shard = rerun.data.shards[0]!;
    const name = 'pool-000000.tar.arrow';
    // The first batch of shard 0: rows 0..B−1, all decodable.
    const S = proxy.manifest.image.size;
    const pixels = new Float32Array(B * 3 * S * S);
    const L = proxy.manifest.text.context_length;
    const ids = new BigInt64Array(B * L);
    const tok = await loadClipTokenizer(proxy.paths.vocab);
    let i = 0;
    for await (const s of (await openShard(shard)).samples) {
      if (i === B) break;
      await preprocessInto(s.files.get('jpg')!, proxy.manifest.image, pixels, i * 3 * S * S);
      tok.tokenizeInto(s.files.get('txt')!.toString('utf8'), L, ids, i * L, proxy.manifest.text.pad_id);
      i++;
    }
    const enc = await openEncoders(proxy, { device: 'cpu', intraOpThreads: 1 });
    const img = await enc.imageFeatures(pixels, B);
    const txt = await enc.textFeatures(ids, B);
    await enc.release();
    const h = proxy.heads;
    const rows = (a: Float32Array, d: number) => Array.from({ length: B }, (_, k) => Array.from(a.subarray(k * d, (k + 1) * d)));
    const mat = (a: Float32Array, r: number) => Array.from({ length: r }, (_, k) => Array.from(a.subarray(k * h.p, (k + 1) * h.p)));
    const oracle = (ref: BundleHeads) => mimicFromFeatures({
      imageFeatures: rows(img, h.dv), textFeatures: rows(txt, h.dt),
      visualProjection: mat(h.visualProjection, h.dv), textProjection: mat(h.textProjection, h.dt),
      refVisualProjection: mat(ref.visualProjection, h.dv), refTextProjection: mat(ref.textProjection, h.dt),
      logitScale: h.logitScale,
    });
    const cases: [string, BundleHeads][] = [
      ['scores', reference.heads],
      ['controls/neg_w', controlHeads(h, reference.heads, 'neg_w')],
      ['controls/random', controlHeads(h, reference.heads, 'random', ARGS.seed)],
    ];
    for (const [run, heads] of cases) {
      const file = await readScoreFile(join(OUT, run, 'demo-proxy-400', name), { columns: ['mimic_proj_visual', 'mimic_proj_text', 'mimic_proj_both', 'batch'] });
      const want = oracle(heads);
      for (const l of ['visual', 'text', 'both'] as const) {
        const got = (file.columns[`mimic_proj_${l}`] as Float32Column).values;
        want[l].mimicProj.forEach((v, k) => expect(Math.abs(got[k]! - v), `${run} ${l} row ${k}`).toBeLessThanOrEqual(2e-4 * Math.max(1, Math.abs(v))));
      }
    }
    // D = −W: CLIP's loss is invariant to rescaling a projection, so every gradient is orthogonal to W and the
    // scores are 0 up to rounding, where the real direction's are of order 0.1–1.
    // The three directions give three different rankings: the controls are not the real scores relabelled.
    const both = async (run: string) => (await readScoreFile(join(OUT, run, 'demo-proxy-400', name), { columns: ['mimic_proj_both'] })).columns.mimic_proj_both as Float32Column;
    const [a, b, c] = await Promise.all(['scores', 'controls/neg_w', 'controls/random'].map(both));
    expect(Math.max(...Array.from(b!.values, Math.abs))).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(a!.values, Math.abs))).toBeGreaterThan(0.1);
    expect(Array.from(a!.values)).not.toEqual(Array.from(b!.values));
    expect(Array.from(a!.values)).not.toEqual(Array.from(c!.values));
  });

  it('starts a score run afresh when its arguments change (another batch size), and skips the controls when asked', async () => {
    const lines: string[] = [];
    const r = await runDemo({ out: OUT, ...ARGS, batchSize: 16, controls: false, intraOpThreads: 1, onStep: (l) => lines.push(l) });
    expect(r.data.reused).toBe(true);
    expect(r.scores.summaries).toHaveLength(1);
    expect(r.scores.summaries[0]!.shards.scored).toBe(r.scores.summaries[0]!.shards.mine);
    expect(lines.some((l) => l.includes('held scores made with other arguments'))).toBe(true);
    expect(r.evaluation.report.scores.map((s) => s.column)).not.toContain('mimic_proj_both:neg_w');
  });

  it('rebuilds the pool (and rescores) when the noise changes', async () => {
    const r = await runDemo({ out: OUT, ...ARGS, noise: 0.5, controls: false, intraOpThreads: 1 });
    expect(r.data.reused).toBe(false);
    expect(r.data.truth.noise).toBe(0.5);
    expect(r.evaluation.report.noiseRate).toBeCloseTo(0.5, 1);
    expect(r.scores.summaries[0]!.shards.alreadyDone).toBe(0);
  });

  it('refuses a folder it did not write, and says how to get the emoji packages when they are missing', async () => {
    const foreign = join(tmp, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'precious.txt'), 'keep me');
    await expect(runDemo({ out: foreign, ...ARGS })).rejects.toMatchObject({ code: 'E_OUTPUT', message: expect.stringMatching(/not written by `mimic demo`/) });
    expect(readFileSync(join(foreign, 'precious.txt'), 'utf8')).toBe('keep me');
    const empty = join(tmp, 'no-packages');
    mkdirSync(empty);
    await expect(runDemo({ out: join(tmp, 'fresh'), ...ARGS, resolveFrom: empty })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringMatching(/needs the npm package emoji-datasource-google/),
      hint: expect.stringMatching(/npm ci/),
    });
  });
});
