import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { radixSortRecords } from '../../src/filter/radix.js';
import { ExternalSorter } from '../../src/filter/extsort.js';
import { parseUid, uidHex, npyHeader } from '../../src/filter/npy.js';
import { runFilter } from '../../src/filter/select.js';
import { makePool, rng, type Truth } from './helpers.js';

let dir: string;
let truth: Truth;
const lines = (p: string) => readFileSync(p, 'utf8').split('\n').filter((l) => l !== '');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-exports-'));
  truth = await makePool(join(dir, 'pool'), { seed: 99, checkpoints: ['ck'], files: [700, 512, 300], noUidRate: 0.05 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function randomRecords(n: number, stride: number, seed: number, narrow = false): Uint32Array {
  const r = rng(seed);
  const a = new Uint32Array(n * stride);
  for (let i = 0; i < a.length; i++) a[i] = narrow ? Math.floor(r() * 3) : Math.floor(r() * 2 ** 32);
  return a;
}

function recordKey(a: Uint32Array, i: number, stride: number, keyWords: number): bigint {
  let k = 0n;
  for (let w = 0; w < keyWords; w++) k = (k << 32n) | BigInt(a[i * stride + w]);
  return k;
}

function sortedByBigInt(a: Uint32Array, stride: number, keyWords: number): Uint32Array {
  const n = a.length / stride;
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((x, y) => {
    const kx = recordKey(a, x, stride, keyWords);
    const ky = recordKey(a, y, stride, keyWords);
    return kx < ky ? -1 : kx > ky ? 1 : x - y; // stable
  });
  const out = new Uint32Array(a.length);
  idx.forEach((j, i) => out.set(a.subarray(j * stride, (j + 1) * stride), i * stride));
  return out;
}

describe('radix and external sort', () => {
  it.each([
    [10, 4, 4, false], [5000, 4, 4, false], [5000, 7, 7, true], [3000, 6, 2, true], [1500, 5, 3, false],
  ])('sorts %i records of %i words on %i key words (few distinct digits: %s) like a BigInt sort, stably', (n, stride, keyWords, narrow) => {
    const a = randomRecords(n, stride, n + stride, narrow);
    const want = sortedByBigInt(a, stride, keyWords);
    radixSortRecords(a, n, stride, keyWords);
    expect(a).toEqual(want);
  });

  it('merges spilled runs in several rounds under a tiny memory budget and removes its files', () => {
    const n = 5000;
    const a = randomRecords(n, 4, 5);
    const sorter = new ExternalSorter({ stride: 4, keyWords: 4, memoryBytes: 512, fanIn: 4, tmpDir: dir });
    for (let i = 0; i < n; i++) sorter.push(a, i * 4);
    expect(sorter.bufferRecords).toBe(16);
    const got: number[] = [];
    for (const chunk of sorter.sorted()) got.push(...chunk);
    expect(sorter.runFiles).toBeGreaterThan(n / 16); // first-level runs plus merged ones
    expect(Uint32Array.from(got)).toEqual(sortedByBigInt(a, 4, 4));
    sorter.close();
    expect(readdirSync(dir).filter((f) => f.startsWith('mimic-sort-'))).toEqual([]);
  });
});

describe('uids', () => {
  it('parse like Python int(uid, 16) into four words, most significant first', () => {
    const r = rng(3);
    for (let k = 0; k < 200; k++) {
      const len = 1 + Math.floor(r() * 32);
      let s = Array.from({ length: len }, () => '0123456789abcdefABCDEF'[Math.floor(r() * 22)]).join('');
      if (k === 0) s = 'f'.repeat(32);
      const w = new Uint32Array(4);
      expect(parseUid(s, w)).toBe(true);
      expect(BigInt('0x' + uidHex(w))).toBe(BigInt('0x' + s));
    }
    for (const bad of ['', 'g', '0x12', ' 12', '-1', '1'.repeat(33), 'é']) expect(parseUid(bad, new Uint32Array(4)), bad).toBe(false);
  });

  it('writes an NPY v1.0 header numpy accepts, padded to 64 bytes', () => {
    for (const n of [0, 1, 123456789]) {
      const h = npyHeader(n);
      expect(h.length % 64).toBe(0);
      expect(Buffer.from(h.subarray(0, 8)).toString('latin1')).toBe('\x93NUMPY\x01\x00');
      expect(Buffer.from(h).toString('latin1')).toContain(`'shape': (${n},)`);
      expect(h[h.length - 1]).toBe(10);
    }
  });
});

describe('exports of the kept rows', () => {
  it('the DataComp .npy loads in numpy as the resharder expects, even when the sort spills to disk', async () => {
    const out = join(dir, 'npy');
    const s = await runFilter({
      runs: [join(dir, 'pool')], keep: ['mimic_visual >= p30'],
      npy: join(out, 'subset.npy'), uids: join(out, 'uids.txt'), keys: join(out, 'keys.txt'),
      sortMemoryBytes: 1024, tmpDir: dir,
    });
    const npy = s.exports.npy as { uids: number; rows_without_uid: number; sort_run_files: number; duplicate_uids: number };
    expect(npy.sort_run_files).toBeGreaterThan(1); // 1 KiB holds 32 records: the sort went external
    expect(npy.uids + npy.rows_without_uid).toBe(s.kept);
    expect(npy.rows_without_uid).toBeGreaterThan(0);
    const uids = lines(join(out, 'uids.txt'));
    expect(uids.length).toBe(npy.uids);
    const r = spawnSync('/usr/bin/python3', ['scripts/check_npy.py', join(out, 'subset.npy'), join(out, 'uids.txt')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, count: npy.uids, dtype: "[('f0', '<u8'), ('f1', '<u8')]", problems: [] });
    // the uid and key files list the kept rows in pool order
    const keptRows = new Set(lines(join(out, 'keys.txt')));
    expect(keptRows.size).toBe(s.kept);
    const expectUids = truth.rows.filter((row) => keptRows.has(row.key) && row.uid !== null).map((row) => row.uid);
    expect(uids).toEqual(expectUids);
    expect(readdirSync(dir).filter((f) => f.startsWith('mimic-sort-'))).toEqual([]);
    expect(readdirSync(out).sort()).toEqual(['keys.txt', 'subset.npy', 'uids.txt']);
  });

  it('an empty selection still writes valid, empty files', async () => {
    const out = join(dir, 'empty');
    const s = await runFilter({ runs: [join(dir, 'pool')], keep: ['loss > 1e30'], npy: join(out, 'a.npy'), uids: join(out, 'u.txt'), table: join(out, 't.arrow') });
    expect(s.kept).toBe(0);
    const r = spawnSync('/usr/bin/python3', ['scripts/check_npy.py', join(out, 'a.npy'), join(out, 'u.txt')], { encoding: 'utf8' });
    expect(JSON.parse(r.stdout).ok).toBe(true);
    expect(tableFromIPC(readFileSync(join(out, 't.arrow'))).numRows).toBe(0);
  });

  it('the Arrow and Parquet tables hold the same kept rows and columns', async () => {
    const out = join(dir, 'tables');
    const base = { runs: [join(dir, 'pool')], keep: ['clip_score >= p50'], drop: ['mimic_text < p10'] };
    const a = await runFilter({ ...base, table: join(out, 'kept.arrow') });
    const p = await runFilter({ ...base, table: join(out, 'kept.parquet') });
    expect(p.kept).toBe(a.kept);
    const t = tableFromIPC(readFileSync(join(out, 'kept.arrow')));
    expect(t.numRows).toBe(a.kept);
    expect(t.schema.metadata.get('mimic.filter.rules')).toContain('clip_score >= p50');
    const file = await asyncBufferFromFile(join(out, 'kept.parquet'));
    const meta = await parquetMetadataAsync(file);
    expect(Number(meta.num_rows)).toBe(a.kept);
    expect(meta.key_value_metadata?.find((kv) => kv.key === 'mimic.filter.rules')?.value).toContain('mimic_text < p10');
    const rows = await parquetReadObjects({ file });
    expect(rows.length).toBe(a.kept);
    const arrowRows = t.toArray().map((r) => r.toJSON());
    for (let i = 0; i < rows.length; i++) {
      for (const c of ['shard', 'row', 'key', 'uid', 'mimic_proj_visual', 'ref_clip_sim', 'loss']) {
        expect(rows[i][c], `${c} of row ${i}`).toEqual(arrowRows[i][c]);
      }
    }
    // values are the score files' values
    const byKey = new Map(truth.rows.map((r) => [r.key, r]));
    for (const r of arrowRows.slice(0, 50)) {
      expect(r.mimic_proj_visual).toBe(byKey.get(r.key as string)!.values.mimic_proj_visual[0]);
      expect(r.uid).toBe(byKey.get(r.key as string)!.uid);
    }
  });

  it('keeps nothing half-written when the run fails part way', async () => {
    const out = join(dir, 'failed');
    // The npy sort must spill (1 KiB) into a temporary folder that cannot be created: the run fails during
    // the final pass, after the other exports have written part of their files.
    const e = await runFilter({
      runs: [join(dir, 'pool')], keep: ['mimic_visual >= p10'],
      npy: join(out, 'x.npy'), keys: join(out, 'k.txt'), table: join(out, 't.parquet'),
      sortMemoryBytes: 1024, tmpDir: join(dir, 'nonexistent/tmp'),
    }).catch((x) => x);
    expect(e).toMatchObject({ code: 'E_IO' });
    expect(e.message).toMatch(/temporary folder/);
    expect(readdirSync(out)).toEqual([]);
  });
});
