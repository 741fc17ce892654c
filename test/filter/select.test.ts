import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFilter } from '../../src/filter/select.js';
import { MimicError } from '../../src/errors.js';
import { makePool, python, type Truth } from './helpers.js';

let dir: string;
let truth: Truth;
let tied: Truth;
const lines = (p: string) => readFileSync(p, 'utf8').split('\n').filter((l) => l !== '');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-select-'));
  // Files of several sizes, one empty, one with a single row; ~10% failed rows; some rows without uid.
  truth = await makePool(join(dir, 'pool'), { seed: 7, checkpoints: ['ck'], files: [400, 0, 1, 333, 266] });
  // Few distinct values (ties everywhere), −0 and +0 both present.
  tied = await makePool(join(dir, 'tied'), { seed: 11, checkpoints: ['ck'], files: [120, 200, 80], tiedColumns: { mimic_proj_visual: 6, mimic_proj_text: 1 } });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ORACLE_RULES = `
x = {c: col(c, 0).astype(np.float64) for c in ['ref_clip_sim', 'mimic_proj_visual', 'loss', 'mimic_proj_text']}
def P(c, q):
    v = x[c][ok & ~np.isnan(x[c])]
    return float(np.percentile(v.astype(np.float32), q, method='linear'))
p = {f'{c}:{q}': P(c, q) for c, q in A['pcts']}
with np.errstate(invalid='ignore'):
    k1 = x['ref_clip_sim'] >= p['ref_clip_sim:70']
    d1 = x['mimic_proj_visual'] < p['mimic_proj_visual:20']
    k2 = (x['loss'] <= p['loss:99.5']) | ~(x['mimic_proj_text'] > 0.25)
kept = ok & k1 & ~d1 & k2
out({'p': p, 'kept': [keys[i] for i in np.nonzero(kept)[0]],
     'matched': [int((ok & k1).sum()), int((ok & d1).sum()), int((ok & k2).sum())],
     'both01': int((ok & k1 & d1).sum()), 'both02': int((ok & k1 & k2).sum()), 'both12': int((ok & d1 & k2).sum()),
     'ok': int(ok.sum())})
`;

describe('runFilter against numpy', () => {
  it('percentiles are numpy.percentile(linear) over ok rows; keep/drop combine as documented', async () => {
    const out = join(dir, 'out1');
    const s = await runFilter({
      runs: [join(dir, 'pool')],
      keep: ['clip_score >= p70', '(loss <= p99.5) or not (mimic_text > 0.25)'],
      drop: ['mimic_visual < p20'],
      keys: join(out, 'keys.txt'),
      summary: join(out, 'summary.json'),
    });
    const want = python<{ p: Record<string, number>; kept: string[]; matched: number[]; both01: number; both02: number; both12: number; ok: number }>(
      ORACLE_RULES, truth, { pcts: [['ref_clip_sim', 70], ['mimic_proj_visual', 20], ['loss', 99.5]] });
    const got = Object.fromEntries(s.percentiles.map((p) => [`${p.column}:${p.percentile.slice(1)}`, p.value]));
    expect(got).toEqual(want.p); // exact float64 equality
    expect(lines(join(out, 'keys.txt'))).toEqual(want.kept);
    expect(s.kept).toBe(want.kept.length);
    expect(s.rows.ok).toBe(want.ok);
    // rules are reported in keep, keep, drop order
    expect(s.rules.map((r) => r.matched)).toEqual([want.matched[0], want.matched[2], want.matched[1]]);
    const ov = Object.fromEntries(s.overlaps.map((o) => [o.rules.join(''), o.both]));
    expect(ov).toEqual({ '01': want.both02, '02': want.both01, '12': want.both12 });
    // the summary file is the returned summary
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).kept).toBe(s.kept);
  });

  it('counts rows excluded by status, per status, and never keeps them', async () => {
    const s = await runFilter({ runs: [join(dir, 'pool')], keep: ['loss > -1000'], keys: join(dir, 'out2/keys.txt') });
    const want = python<{ ex: Record<string, number>; pool: number }>(`
from collections import Counter
c = Counter(r['status'][0] for r in R if r['status'][0] != 'ok')
out({'ex': dict(c), 'pool': len(R)})`, truth);
    expect(s.rows.pool).toBe(want.pool);
    expect(s.rows.excluded_by_status).toEqual(want.ex);
    expect(s.rows.ok + Object.values(s.rows.excluded_by_status).reduce((a, b) => a + b, 0)).toBe(s.rows.pool);
    expect(s.kept).toBe(s.rows.ok);
    const okKeys = truth.rows.filter((r) => r.status[0] === 'ok').map((r) => r.key);
    expect(lines(join(dir, 'out2/keys.txt'))).toEqual(okKeys);
  });

  it('percentiles on a heavily tied column, with −0 and +0, at p0, p100 and between', async () => {
    const qs = [0, 1, 12.5, 33.3, 50, 70, 99.5, 100];
    const s = await runFilter({ runs: [join(dir, 'tied')], keep: qs.map((q) => `mimic_visual >= p${q} or mimic_text >= p${q}`), summary: join(dir, 'out3/s.json') });
    const want = python<Record<string, number>>(`
r = {}
for c in ['mimic_proj_visual', 'mimic_proj_text']:
    v = col(c, 0)
    v = v[ok & ~np.isnan(v)]
    for q in A['qs']:
        r[f'{c}:p{q}'] = float(np.percentile(v, q))
out(r)`, tied, { qs });
    const got = Object.fromEntries(s.percentiles.map((p) => [`${p.column}:${p.percentile}`, p.value]));
    expect(got).toEqual(want);
    // at_value counts the rows equal to the percentile value
    const p0 = s.percentiles.find((p) => p.column === 'mimic_proj_visual' && p.percentile === 'p0')!;
    const eq = tied.rows.filter((r) => r.status[0] === 'ok' && r.values.mimic_proj_visual[0] === p0.value).length;
    expect(p0.at_value).toBe(eq);
  });

  it('top()/bottom() keep exact counts, breaking ties by (uid, shard, row), and report the ties', async () => {
    const ORACLE = `
v = col('mimic_proj_visual', 0).astype(np.float64)
idx = [i for i in range(len(R)) if ok[i] and not np.isnan(v[i])]
shards = sorted(set(r['shard'] for r in R))
rank = {s: k for k, s in enumerate(shards)}
def tk(i):
    u = R[i]['uid']
    return (1 if u is None else 0, 0 if u is None else int(u, 16), rank[R[i]['shard']], R[i]['row'])
n = len(idx)
res = {}
for name, d, cnt, pct in A['cases']:
    N = min(n, math.floor(cnt * n / 100) if pct else cnt)
    order = sorted(idx, key=lambda i: ((-v[i] if d == 'top' else v[i]), tk(i)))
    sel = sorted(order[:N])
    bv = v[order[N - 1]] if 0 < N else None
    res[name] = {'keys': [keys[i] for i in sel], 'tied': int(sum(1 for i in idx if bv is not None and v[i] == bv)), 'boundary': bv}
out(res)`;
    const cases: [string, 'top' | 'bottom', number, boolean][] = [
      ['t100', 'top', 100, false], ['b15', 'bottom', 15, true], ['t1', 'top', 1, false], ['tall', 'top', 10_000, false], ['t0', 'top', 0, false], ['b37', 'bottom', 37.5, true],
    ];
    const want = python<Record<string, { keys: string[]; tied: number; boundary: number | null }>>(ORACLE, tied, { cases });
    for (const [name, d, cnt, pct] of cases) {
      const rule = `${d}(mimic_visual, ${cnt}${pct ? '%' : ''})`;
      const keysFile = join(dir, `out4/${name}.txt`);
      const s = await runFilter({ runs: [join(dir, 'tied')], keep: [rule], keys: keysFile });
      expect(lines(keysFile), rule).toEqual(want[name].keys);
      const r = s.ranks[0];
      if (want[name].boundary !== null && r.boundary_value !== null) {
        expect(r.boundary_value).toBe(want[name].boundary);
        expect(r.tied_at_boundary).toBe(want[name].tied);
        expect((r.kept_from_ties as number) + ((r.above_boundary ?? r.below_boundary) as number)).toBe(want[name].keys.length);
      }
    }
  });

  it('--top-k equals top(col, n) and every row of an all-equal column is a tie', async () => {
    const a = await runFilter({ runs: [join(dir, 'tied')], topK: { n: 50, by: 'mimic_text' }, keys: join(dir, 'out5/a.txt') });
    const b = await runFilter({ runs: [join(dir, 'tied')], keep: ['top(mimic_proj_text, 50)'], keys: join(dir, 'out5/b.txt') });
    expect(lines(join(dir, 'out5/a.txt'))).toEqual(lines(join(dir, 'out5/b.txt')));
    expect(a.kept).toBe(50);
    expect(a.ranks[0].tied_at_boundary).toBe(a.rows.ok);
    expect(a.ranks[0].kept_from_ties).toBe(50);
    expect(a.ranks[0].tie_break).toMatch(/uid, shard, row/);
    // The sampled files place the boundary's bucket, so the histogram pass counts its low bits too.
    expect(a.passes).toEqual(['histogram', 'ties', 'select']);
    expect(b.kept).toBe(50);
    const c = await runFilter({ runs: [join(dir, 'tied')], topK: { n: 50, by: 'mimic_text' }, keys: join(dir, 'out5/c.txt'), sampleFiles: 0 });
    expect(c.passes).toEqual(['histogram', 'refine', 'ties', 'select']);
    expect(lines(join(dir, 'out5/c.txt'))).toEqual(lines(join(dir, 'out5/a.txt')));
  });

  it('the paper\'s combinations in one command', async () => {
    const s = await runFilter({ runs: [join(dir, 'pool')], keep: ['clip_score >= p70'], drop: ['mimic_visual < p20'], keys: join(dir, 'out6/k.txt') });
    const want = python<{ kept: number }>(`
c = col('ref_clip_sim', 0).astype(np.float64); m = col('mimic_proj_visual', 0).astype(np.float64)
pc = np.percentile(c[ok].astype(np.float32), 70); pm = np.percentile(m[ok].astype(np.float32), 20)
out({'kept': int((ok & (c >= pc) & ~(m < pm)).sum())})`, truth);
    expect(s.kept).toBe(want.kept);
    for (const q of [70, 65, 60]) {
      const t = await runFilter({ runs: [join(dir, 'pool')], keep: [`mimic_visual >= p${q}`], keys: join(dir, `out6/${q}.txt`) });
      const w = python<{ kept: number }>(`
m = col('mimic_proj_visual', 0).astype(np.float64)
out({'kept': int((ok & (m >= np.percentile(m[ok].astype(np.float32), A['q']))).sum())})`, truth, { q });
      expect(t.kept).toBe(w.kept);
      expect(Math.abs(t.kept / t.rows.ok - (100 - q) / 100)).toBeLessThan(0.01);
    }
  });

  it('refuses rules on a column without values, and leaves no output behind', async () => {
    const p = await makePool(join(dir, 'noref'), { seed: 3, checkpoints: ['ck'], files: [30], noRefClip: true });
    expect(p.rows.length).toBe(30);
    const e = await runFilter({ runs: [join(dir, 'noref')], keep: ['clip_score >= 0.2'], keys: join(dir, 'out7/k.txt') }).catch((x) => x);
    expect(e).toBeInstanceOf(MimicError);
    expect(e.code).toBe('E_FILTER');
    expect(e.message).toMatch(/ref_clip_sim has no values/);
    expect(e.hint).toMatch(/--reference-clip-score/);
    expect(() => readFileSync(join(dir, 'out7/k.txt'))).toThrow();
    const e2 = await runFilter({ runs: [join(dir, 'noref')], keep: ['clip_score >= p50'], keys: join(dir, 'out7/k.txt') }).catch((x) => x);
    expect(e2.code).toBe('E_FILTER');
  });
});

describe('tie-breaking beyond the uid', () => {
  it('orders rows without a uid after all uids, then by shard and row; duplicate uids fall to shard and row', async () => {
    for (const [name, spec] of [
      ['nouid', { noUidRate: 0.6 }],
      ['dupuid', { distinctUids: 3, noUidRate: 0.1 }],
    ] as const) {
      const t = await makePool(join(dir, name), { seed: 5, checkpoints: ['ck'], files: [40, 35, 50], tiedColumns: { mimic_proj_visual: 2 }, ...spec });
      const want = python<Record<string, string[]>>(`
v = col('mimic_proj_visual', 0).astype(np.float64)
idx = [i for i in range(len(R)) if ok[i]]
rank = {s: k for k, s in enumerate(sorted(set(r['shard'] for r in R)))}
def tk(i):
    u = R[i]['uid']
    return (1 if u is None else 0, 0 if u is None else int(u, 16), rank[R[i]['shard']], R[i]['row'])
res = {}
for N in A['ns']:
    order = sorted(idx, key=lambda i: (-v[i], tk(i)))
    res[str(N)] = [keys[i] for i in sorted(order[:N])]
    order = sorted(idx, key=lambda i: (v[i], tk(i)))
    res['b' + str(N)] = [keys[i] for i in sorted(order[:N])]
out(res)`, t, { ns: [7, 60, 90] });
      for (const N of [7, 60, 90]) {
        await runFilter({ runs: [join(dir, name)], keep: [`top(mimic_visual, ${N})`], keys: join(dir, `${name}-t${N}.txt`) });
        expect(lines(join(dir, `${name}-t${N}.txt`)), `${name} top ${N}`).toEqual(want[String(N)]);
        await runFilter({ runs: [join(dir, name)], keep: [`bottom(mimic_visual, ${N})`], keys: join(dir, `${name}-b${N}.txt`) });
        expect(lines(join(dir, `${name}-b${N}.txt`)), `${name} bottom ${N}`).toEqual(want['b' + N]);
      }
    }
  });
});
