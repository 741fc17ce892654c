import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePool, python, type Truth } from './helpers.js';

const bin = fileURLToPath(new URL('../../bin/mimic', import.meta.url));
let dir: string;
let truth: Truth;

function mimic(...args: string[]) {
  return spawnSync(process.execPath, [bin, '--no-progress', ...args], { encoding: 'utf8' });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-cli-filter-'));
  truth = await makePool(join(dir, 'run'), { seed: 31, checkpoints: ['ck-1', 'ck-2'], files: [150, 90] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mimic filter (command)', () => {
  it('runs the paper\'s combination over two checkpoints and writes the DataComp subset and summary', () => {
    const out = join(dir, 'out');
    const r = mimic('filter', join(dir, 'run'), '--keep', 'clip_score >= p70', '--drop', 'mimic_visual < p20', '--out', out, '--keys', join(out, 'keys.txt'), '--npy', join(out, 'subset.npy'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ref_clip_sim p70 = /);
    expect(r.stdout).toMatch(/kept: \d+/);
    expect(readdirSync(out).sort()).toEqual(['keys.txt', 'subset.npy', 'summary.json']);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(s.inputs.checkpoints.map((c: { name: string }) => c.name)).toEqual(['ck-1', 'ck-2']);
    const want = python<{ kept: number }>(`
c = np.stack([col('ref_clip_sim', k) for k in range(C)]).astype(np.float64).mean(axis=0).astype(np.float32)
m = np.stack([col('mimic_proj_visual', k) for k in range(C)]).astype(np.float64).mean(axis=0).astype(np.float32)
pc = np.percentile(c[ok], 70); pm = np.percentile(m[ok], 20)
out({'kept': int((ok & (c.astype(np.float64) >= pc) & ~(m.astype(np.float64) < pm)).sum())})`, truth);
    expect(s.kept).toBe(want.kept);
    expect(readFileSync(join(out, 'keys.txt'), 'utf8').split('\n').filter(Boolean).length).toBe(want.kept);
    const uids = readFileSync(join(out, 'keys.txt'), 'utf8').split('\n').filter(Boolean)
      .map((k) => truth.rows.find((row) => row.key === k)!.uid).filter((u) => u !== null);
    const ids = join(out, '..', 'uids-expected.txt');
    writeFileSync(ids, uids.join('\n') + '\n');
    const chk = spawnSync('/usr/bin/python3', ['scripts/check_npy.py', join(out, 'subset.npy'), ids], { encoding: 'utf8' });
    expect(JSON.parse(chk.stdout).ok).toBe(true);
  });

  it('writes the default uids.npy with --out alone and prints JSON with --json', () => {
    const out = join(dir, 'out2');
    const r = mimic('filter', join(dir, 'run', 'ck-1'), '--top-k', '25', '--by', 'mimic_text', '--out', out, '--json');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.kept).toBe(25);
    expect(readdirSync(out).sort()).toEqual(['summary.json', 'uids.npy']);
  });

  it.each([
    [['--keep', 'mimic_visul >= p70'], /E_FILTER: unknown column "mimic_visul" at character 1/, /did you mean mimic_visual/],
    [['--keep', 'mimic_visual >= p70 and'], /E_FILTER: expected a column.*at character 24/, /\^/],
    [['--aggregate', 'avg', '--keep', 'loss > 1'], /E_USAGE: --aggregate must be one of mean, median, min, max, vote/, /./],
    [['--top-k', '10', '--keep', 'loss > 1'], /--top-k and --by go together/, /./],
    [['--keep', 'loss > 1'], /nothing to write/, /--out DIR/],
    [['--keep', 'clip_score >= p50', '--basic-filter'], /--basic-filter needs captions/, /./],
    [['--table', 'x.csv', '--keep', 'loss > 1'], /must end in \.arrow or \.parquet/, /./],
  ])('exits 2 with a clear message for %j', (args, re, re2) => {
    const out = join(dir, 'bad');
    const r = mimic('filter', join(dir, 'run'), ...args, ...(re.source.includes('nothing') ? [] : ['--out', out]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr).toMatch(re2);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(join(out, 'uids.npy'))).toBe(false);
  });

  it('names the file when a score file is damaged', () => {
    const run = join(dir, 'damaged');
    const r0 = spawnSync('cp', ['-r', join(dir, 'run', 'ck-1'), run]);
    expect(r0.status).toBe(0);
    truncateSync(join(run, 'shard-01.arrow'), 500);
    const r = mimic('filter', run, '--keep', 'loss > 0', '--out', join(dir, 'dmg-out'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/E_SCORES: .*\(.*damaged\/shard-01\.arrow\)/);
    expect(existsSync(join(dir, 'dmg-out', 'uids.npy'))).toBe(false);
  });
});

describe('a run that is not complete', () => {
  it('is refused by filter (naming the missing shards and the way on), accepted with --allow-incomplete, and described by stats with a warning', async () => {
    const { cpSync, mkdirSync } = await import('node:fs');
    const run = join(dir, 'partial');
    cpSync(join(dir, 'run'), run, { recursive: true });
    // The run record lists one shard more than was scored.
    const names = truth.units.map((u) => u.replace(/\.arrow$/, ''));
    mkdirSync(join(run, '_manifests'), { recursive: true });
    writeFileSync(join(run, '_manifests', 'run.json'), JSON.stringify({ shardNames: [...names, 'later/shard-9.tar'] }));

    const refused = mimic('filter', run, '--keep', 'mimic >= p70', '--out', join(dir, 'partial-out'));
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/the run is not complete: 1 of the run's 3 shards have no score file in .*ck-1 yet \(e\.g\. later\/shard-9\.tar\)/);
    expect(refused.stderr).toMatch(/--allow-incomplete/);
    expect(existsSync(join(dir, 'partial-out'))).toBe(false);

    const allowed = mimic('filter', run, '--keep', 'mimic >= p70', '--out', join(dir, 'partial-out'), '--allow-incomplete');
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stderr).toMatch(/incomplete run: 1 of the run's 3 shards/);
    const whole = mimic('filter', join(dir, 'run'), '--keep', 'mimic >= p70', '--json', '--summary', join(dir, 'whole.json'));
    const partial = JSON.parse(readFileSync(join(dir, 'partial-out', 'summary.json'), 'utf8'));
    expect(partial.kept).toBe(JSON.parse(whole.stdout).kept);
    expect(partial.inputs.missing_shards).toEqual({ 'ck-1': 1, 'ck-2': 1 });
    expect(JSON.parse(whole.stdout).inputs.missing_shards).toBeUndefined();

    const stats = mimic('stats', run);
    expect(stats.status, stats.stderr).toBe(0);
    expect(stats.stderr).toMatch(/incomplete run/);
  });
});
