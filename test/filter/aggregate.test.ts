import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { runFilter } from '../../src/filter/select.js';
import { Pool } from '../../src/filter/pool.js';
import { MimicError } from '../../src/errors.js';
import { makePool, python, type Truth } from './helpers.js';

let dir: string;
let truth: Truth;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-agg-'));
  // Three checkpoints; a few rows fail in the last one only; batches of 8 (last one of each file smaller).
  truth = await makePool(join(dir, 'run'), { seed: 21, checkpoints: ['ck-a', 'ck-b', 'ck-c'], files: [101, 64, 37], batchSize: 8 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The kept rows' values of a column from an exported Arrow table, keyed by sample key. */
function tableValues(path: string, column: string): Map<string, number | null> {
  const t = tableFromIPC(readFileSync(path));
  const keys = t.getChild('key')!.toArray() as string[];
  const v = t.getChild(column)!;
  return new Map(keys.map((k, i) => [k, v.get(i) as number | null]));
}

const ORACLE = `
def batches(k):
    # rows of each (unit, batch) of checkpoint k that are ok in k
    g = {}
    for i, r in enumerate(R):
        if r['status'][k] == 'ok':
            g.setdefault((r['unit'], r['batch'][k]), []).append(i)
    return g.values()

def ranks_avg(v):
    order = np.argsort(v, kind='stable'); r = np.empty(len(v)); j = 0
    sv = v[order]
    while j < len(v):
        e = j + 1
        while e < len(v) and sv[e] == sv[j]: e += 1
        r[order[j:e]] = (j + 1 + e) / 2
        j = e
    return r

cols = ['mimic_proj_visual', 'loss', 'clip_sim']
X = {c: np.stack([col(c, k) for k in range(C)]).astype(np.float64) for c in cols}
how = A['how']; tau = A['tau']; norm = A['normalize']
res = {}
for c in cols:
    per = X[c].copy()
    batch_rel = c != 'clip_sim'
    if norm != 'none' and batch_rel:
        out_ = np.full_like(per, np.nan)
        for k in range(C):
            for idx in batches(k):
                v = per[k, idx]
                B = len(idx)
                if norm == 'rank':
                    out_[k, idx] = (ranks_avg(v) - 0.5) / B
                else:
                    z = v / tau; e = np.exp(z - z.max()); out_[k, idx] = B * e / e.sum()
        per = out_
    if how == 'vote' and c.startswith('mimic_'):
        votes = np.zeros(len(R))
        for k in range(C):
            for idx in batches(k):
                z = per[k, idx] / tau; e = np.exp(z - z.max()); w = e / e.sum()
                votes[idx] += (w > 1.0 / len(idx))
        agg = votes / C
    elif how in ('mean', 'vote'):
        agg = per.mean(axis=0)
    elif how == 'median':
        agg = np.median(per, axis=0)
    elif how == 'min':
        agg = per.min(axis=0)
    else:
        agg = per.max(axis=0)
    agg = agg.astype(np.float32)
    res[c] = {keys[i]: (None if (not ok[i] or np.isnan(agg[i])) else float(agg[i])) for i in range(len(R))}
out(res)
`;

describe('aggregation across checkpoints and per-batch normalisation', () => {
  for (const [how, normalize, tau] of [
    ['mean', 'none', 1], ['median', 'none', 1], ['min', 'none', 1], ['max', 'none', 1],
    ['vote', 'none', 1], ['vote', 'none', 0.05],
    ['mean', 'rank', 1], ['max', 'softmax', 0.5],
  ] as const) {
    it(`--aggregate ${how} --normalize ${normalize} --tau ${tau} matches a direct numpy computation`, async () => {
      const table = join(dir, `t-${how}-${normalize}-${tau}.arrow`);
      const s = await runFilter({ runs: [join(dir, 'run')], aggregate: how, normalize, tau, keep: ['loss > -1e30 or not (loss > -1e30)'], table });
      expect(s.inputs.aggregate).toBe(how);
      const want = python<Record<string, Record<string, number | null>>>(ORACLE, truth, { how, tau, normalize });
      const okKeys = truth.rows.filter((r) => r.status.every((x) => x === 'ok')).map((r) => r.key);
      expect(s.kept).toBe(okKeys.length);
      for (const c of ['mimic_proj_visual', 'loss', 'clip_sim']) {
        const got = tableValues(table, c);
        expect([...got.keys()]).toEqual(okKeys);
        for (const k of okKeys) {
          const g = got.get(k)!;
          const w = want[c][k];
          if (normalize === 'softmax' || (how === 'mean' && normalize === 'rank')) {
            // exp() and sums may round differently in the last float32 bit
            expect(g, `${c} ${k}`).toBeCloseTo(w!, 5);
          } else {
            expect(g, `${c} ${k}`).toBe(w);
          }
        }
      }
      if (how === 'vote') {
        // a vote is a fraction of the three checkpoints
        for (const v of tableValues(table, 'mimic_proj_visual').values()) expect([0, 1 / 3, 2 / 3, 1].map(Math.fround)).toContain(v);
      }
    });
  }

  it('rows failing in one checkpoint only are excluded and counted', async () => {
    const s = await runFilter({ runs: [join(dir, 'run', 'ck-a'), join(dir, 'run', 'ck-c')], keep: ['loss > -1e30'], summary: join(dir, 's.json') });
    const mismatch = truth.rows.filter((r) => r.status[0] === 'ok' && r.status[2] !== 'ok').length;
    expect(mismatch).toBeGreaterThan(0);
    expect(s.rows.status_mismatch_between_checkpoints).toBe(mismatch);
    expect(s.rows.excluded_by_status.decode_error).toBeGreaterThanOrEqual(mismatch);
    expect(s.inputs.checkpoints).toHaveLength(2);
  });

  it('percentiles apply to the aggregated values', async () => {
    const s = await runFilter({ runs: [join(dir, 'run')], aggregate: 'median', keep: ['mimic_visual >= p40'], keys: join(dir, 'k.txt') });
    const want = python<{ p: number; kept: string[] }>(`
X = np.stack([col('mimic_proj_visual', k) for k in range(C)]).astype(np.float64)
agg = np.median(X, axis=0).astype(np.float32)
p = float(np.percentile(agg[ok], 40))
out({'p': p, 'kept': [keys[i] for i in range(len(R)) if ok[i] and float(agg[i]) >= p]})`, truth);
    expect(s.percentiles[0].value).toBe(want.p);
    expect(readFileSync(join(dir, 'k.txt'), 'utf8').split('\n').filter(Boolean)).toEqual(want.kept);
  });

  it('refuses checkpoints that cover different shards, and vote with normalisation', async () => {
    await makePool(join(dir, 'other'), { seed: 1, checkpoints: ['ck-x'], files: [10, 10, 10, 10] });
    const e = (() => { try { Pool.open({ runs: [join(dir, 'run'), join(dir, 'other')] }); } catch (x) { return x as MimicError; } })();
    expect(e).toBeInstanceOf(MimicError);
    expect(e!.code).toBe('E_SCORES');
    expect(e!.message).toMatch(/cover different shards/);
    expect(() => Pool.open({ runs: [join(dir, 'run')], aggregate: 'vote', normalize: 'rank' })).toThrow(/cannot be combined/);
    expect(() => Pool.open({ runs: [join(dir, 'run')], tau: 0 })).toThrow(/--tau/);
  });
});
