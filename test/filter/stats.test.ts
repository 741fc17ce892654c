import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { poolStats } from '../../src/filter/stats.js';
import { writeReport, formatStatsTable } from '../../src/filter/report.js';
import { makePool, python, type Truth } from './helpers.js';

let dir: string;
let truth: Truth;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-stats-'));
  truth = await makePool(join(dir, 'run'), { seed: 4, checkpoints: ['ck'], files: [300, 211], tiedColumns: { mimic_proj_text: 9 } });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mimic stats', () => {
  it('quantiles, moments and correlations match numpy/scipy', async () => {
    const st = await poolStats({ runs: [join(dir, 'run')], report: true });
    const want = python<{ q: Record<string, Record<string, number>>; mean: Record<string, number>; corr: Record<string, [number, number]>; ok: number }>(`
from scipy import stats as S
cols = ['loss', 'clip_sim', 'ref_clip_sim', 'mimic_proj_visual', 'mimic_proj_text', 'mimic_cos_both']
q = {}; mean = {}
for c in cols:
    v = col(c, 0)[ok]
    q[c] = {f'p{p}': float(np.percentile(v, p)) for p in [1, 5, 25, 50, 75, 95, 99]}
    q[c]['min'] = float(v.min()); q[c]['max'] = float(v.max())
    mean[c] = float(v.astype(np.float64).mean())
corr = {}
for L in ['visual', 'text', 'both']:
    x = col('mimic_proj_' + L, 0)[ok].astype(np.float64); y = col('ref_clip_sim', 0)[ok].astype(np.float64)
    corr[L] = [float(S.pearsonr(x, y)[0]), float(S.spearmanr(x, y)[0])]
out({'q': q, 'mean': mean, 'corr': corr, 'ok': int(ok.sum())})`, truth);
    expect(st.ok).toBe(want.ok);
    expect(st.rows).toBe(truth.rows.length);
    for (const [c, qs] of Object.entries(want.q)) {
      const s = st.columns.find((x) => x.column === c)!;
      expect({ ...s.quantiles, min: s.min, max: s.max }, c).toEqual(qs);
      expect(s.mean).toBeCloseTo(want.mean[c], 10);
      expect(s.values).toBe(want.ok);
    }
    expect(st.clipColumn).toBe('ref_clip_sim');
    for (const L of ['visual', 'text', 'both']) {
      const c = st.correlations.find((x) => x.x === `mimic_proj_${L}`)!;
      expect(c.pearson).toBeCloseTo(want.corr[L][0], 10);
      expect(c.spearman).toBeCloseTo(want.corr[L][1], 10);
      expect(c.spearmanRows).toBe(c.n);
      expect(c.hexbin!.bins.reduce((a, b) => a + b.count, 0)).toBeLessThanOrEqual(c.n);
    }
    const table = formatStatsTable(st);
    expect(table).toMatch(/mimic_proj_visual\s+\d+/);
    expect(table.split('\n')[1]).toMatch(/^column\s+values\s+missing\s+mean/);
  });

  it('estimates Spearman on a reproducible sample when the pool is larger than exactRows', async () => {
    const a = await poolStats({ runs: [join(dir, 'run')], report: true, exactRows: 100 });
    const b = await poolStats({ runs: [join(dir, 'run')], report: true, exactRows: 100 });
    const c = a.correlations[0];
    expect(c.spearmanRows).toBe(100);
    expect(c.n).toBeGreaterThan(100);
    expect(b.correlations[0].spearman).toBe(c.spearman);
  });

  it('writes SVG, PNG (decodable) and a self-contained HTML page', async () => {
    const st = await poolStats({ runs: [join(dir, 'run')], report: true, bins: 30 });
    const out = join(dir, 'report');
    const files = await writeReport(out, st);
    // 12 float columns have values (ref_clip_sim included) + 3 mimic/CLIP pairs
    expect(files.svg.length).toBe(st.columns.length + 3);
    expect(files.png.length).toBe(files.svg.length);
    for (const p of files.png) {
      const m = await sharp(p).metadata();
      expect(m.format).toBe('png');
      expect(m.width).toBeGreaterThan(600);
      const { data, info } = await sharp(p).raw().toBuffer({ resolveWithObject: true });
      // not blank: more than one colour
      const first = data.readUInt32LE(0);
      let differs = false;
      for (let i = 0; i + 4 <= data.length && !differs; i += info.channels * 97) differs = data.readUInt32LE(i) !== first;
      expect(differs).toBe(true);
    }
    const html = readFileSync(files.html, 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<(img|script|link)\b[^>]*(src|href)=/); // nothing external
    expect(html).toContain('Pearson');
    expect(JSON.parse(readFileSync(files.json, 'utf8')).ok).toBe(st.ok);
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const svg = readFileSync(files.svg[0], 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<rect /g)!.length).toBeGreaterThan(5);
  });

  it('runs as a command', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['bin/mimic', 'stats', join(dir, 'run'), '--report', join(dir, 'cli-report'), '--no-progress'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^511 rows, \d+ ok/);
    expect(readdirSync(join(dir, 'cli-report'))).toContain('index.html');
    const bad = spawnSync(process.execPath, ['bin/mimic', 'stats', join(dir, 'nope')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/E_SCORES: score run not found/);
  });
});
