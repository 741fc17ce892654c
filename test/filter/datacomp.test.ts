import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { parquetWriteFile } from 'hyparquet-writer';
import { ScoreTableBuilder, writeScoreFile } from '../../src/scores/writer.js';
import { META } from '../../src/scores/schema.js';
import { Pool } from '../../src/filter/pool.js';
import { buildDataCompColumns } from '../../src/filter/datacomp-columns.js';
import { runFilter } from '../../src/filter/select.js';
import { DataCompFilters } from '../../src/text/datacomp.js';
import { writeShard } from '../helpers/shards.js';
import { python, rng } from './helpers.js';

interface Sample {
  key: string;
  uid: string;
  caption: string | null;
  json: Record<string, unknown> | null;
  status: string;
  shard: string;
  row: number;
  b32?: number;
  l14?: number;
}

const CAPTIONS = [
  'Two dogs playing in the snow', 'a cat sleeping on a sofa', 'un chien sur la plage au soleil', 'dog',
  'A red car parked near the old church', 'abc de', 'Zwei Hunde spielen im Schnee', 'a dog on a beach at sunset',
  'A photograph of a mountain lake', null,
];
const SIZES = [[640, 480], [150, 480], [1500, 400], [300, 300], [1024, 768]];

let dir: string;
let samples: Sample[];
let filters: DataCompFilters;
let synsets: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-datacomp-'));
  const r = rng(17);
  synsets = join(dir, 'synsets.txt');
  writeFileSync(synsets, 'n02084071 dog\nn02958343 car\n');
  filters = await DataCompFilters.load({ synsetsFile: synsets });
  samples = [];
  const shards = [join(dir, 'shards', 'a', '000000.tar'), join(dir, 'shards', 'b', '000000.tar')];
  for (let s = 0; s < shards.length; s++) {
    const n = s === 0 ? 23 : 17;
    const tarSamples = [];
    for (let i = 0; i < n; i++) {
      const uid = Array.from({ length: 32 }, () => '0123456789abcdef'[Math.floor(r() * 16)]).join('');
      const caption = CAPTIONS[(i * 7 + s) % CAPTIONS.length];
      const [w, h] = SIZES[(i + s) % SIZES.length];
      const json = i % 11 === 5 ? null : { uid, original_width: w, original_height: h };
      const key = `${s}${String(i).padStart(8, '0')}`;
      const files: Record<string, string | Buffer> = { jpg: Buffer.from([0xff, 0xd8, 0xff, i]) };
      if (caption !== null) files.txt = caption;
      if (json !== null) files.json = JSON.stringify(json);
      tarSamples.push({ key, files });
      // a few rows failed scoring (their status is not ok), whatever their caption
      samples.push({ key, uid, caption, json, status: i % 9 === 4 ? 'decode_error' : 'ok', shard: shards[s], row: i,
        ...(i % 13 === 3 ? {} : { b32: Math.fround(0.1 + 0.3 * r()), l14: Math.fround(0.05 + 0.35 * r()) }) });
    }
    mkdirSync(join(dir, 'shards', s === 0 ? 'a' : 'b'), { recursive: true });
    await writeShard(shards[s], tarSamples);
    const b = new ScoreTableBuilder();
    for (const x of samples.filter((y) => y.shard === shards[s])) {
      b.addRow({ shard: x.shard, row: x.row, key: x.key, uid: x.json ? x.uid : null, status: x.status, error: x.status === 'ok' ? null : 'x',
        batch: 0, batch_size: n, loss: r(), mimic_proj_visual: r() - 0.5, ref_clip_sim: r() });
    }
    await writeScoreFile(join(dir, 'run', 'ck', s === 0 ? 'a/000000.arrow' : 'b/000000.arrow'), b.finish(), { [META.shard]: shards[s] });
  }
  mkdirSync(join(dir, 'run', '_manifests'), { recursive: true });
  // DataComp metadata: shuffled, with uids not in the pool, one uid twice (the first row wins), and some
  // pool rows missing. Captions and sizes as in the shards.
  const meta = samples.filter((x) => x.b32 !== undefined).map((x) => ({ ...x }));
  meta.push({ ...meta[2], b32: 0.99, l14: 0.99 }); // duplicate uid, later in file order: ignored
  for (let k = 0; k < 20; k++) meta.push({ ...meta[k], uid: 'f'.repeat(30) + k.toString(16).padStart(2, '0'), b32: 0.5, l14: 0.5 });
  for (let i = meta.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    if (i !== meta.length - 21 && j !== meta.length - 21) [meta[i], meta[j]] = [meta[j], meta[i]];
  }
  // keep the duplicate after its original
  const dupIdx = meta.findIndex((m) => m.b32 === 0.99);
  const origIdx = meta.findIndex((m) => m.uid === meta[dupIdx].uid && m.b32 !== 0.99);
  if (origIdx > dupIdx) [meta[dupIdx], meta[origIdx]] = [meta[origIdx], meta[dupIdx]];
  const half = Math.floor(meta.length / 2);
  for (const [file, rows] of [['m0.parquet', meta.slice(0, half)], ['m1.parquet', meta.slice(half)]] as const) {
    parquetWriteFile({
      filename: join(dir, file),
      columnData: [
        { name: 'uid', data: rows.map((m) => m.uid), type: 'STRING' },
        { name: 'text', data: rows.map((m) => m.caption), type: 'STRING' },
        { name: 'original_width', data: rows.map((m) => (m.json ? (m.json.original_width as number) : null)), type: 'INT32' },
        { name: 'original_height', data: rows.map((m) => (m.json ? (m.json.original_height as number) : null)), type: 'INT32' },
        { name: 'clip_b32_similarity_score', data: Float32Array.from(rows, (m) => m.b32!), type: 'FLOAT' },
        { name: 'clip_l14_similarity_score', data: Float32Array.from(rows, (m) => m.l14!), type: 'FLOAT' },
      ],
    });
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (p: string) => readFileSync(p, 'utf8').split('\n').filter(Boolean);

describe('DataComp columns in the filter', () => {
  it('computes basic / english / text_match per row from the shards\' txt and json, aligned by (shard, row)', async () => {
    const pool = Pool.open({ runs: [join(dir, 'run')] });
    const side = await buildDataCompColumns(pool, { shards: [join(dir, 'shards/{a,b}/000000.tar')], filters: true, synsetsFile: synsets });
    try {
      const s = await runFilter({ runs: [join(dir, 'run')], side, basicFilter: true, keys: join(dir, 'basic.txt'), table: join(dir, 'basic.arrow') });
      const want = samples.filter((x) => x.status === 'ok' && filters.basic(x.caption, x.json).keep).map((x) => x.key);
      expect(want.length).toBeGreaterThan(3);
      expect(lines(join(dir, 'basic.txt'))).toEqual(want);
      expect(s.kept).toBe(want.length);
      expect(s.side).toMatchObject({ shards: { shards: 2, rows: samples.length } });
      const t = await runFilter({ runs: [join(dir, 'run')], side, keep: ['text_match and english'], keys: join(dir, 'text.txt') });
      const wantText = samples.filter((x) => x.status === 'ok' && filters.textBased(x.caption).keep).map((x) => x.key);
      expect(wantText.length).toBeGreaterThan(1);
      expect(lines(join(dir, 'text.txt'))).toEqual(wantText);
      expect(t.rules[0].matched).toBe(wantText.length);
      // every row's columns, in the exported table (kept rows only): booleans as 0/1
      const tab = tableFromIPC(readFileSync(join(dir, 'basic.arrow')));
      const keys = tab.getChild('key')!.toArray() as string[];
      keys.forEach((k, i) => {
        const x = samples.find((y) => y.key === k)!;
        expect(tab.getChild('basic')!.get(i)).toBe(1);
        expect(tab.getChild('english')!.get(i)).toBe(filters.english(x.caption!).english ? 1 : 0);
        expect(tab.getChild('text_match')!.get(i)).toBe(filters.textMatch(x.caption) ? 1 : 0);
        expect(tab.getChild('english_prob')!.get(i)).toBeCloseTo(filters.english(x.caption!).prob, 6);
      });
    } finally {
      side.close();
    }
  });

  it('joins DataComp metadata by uid in bounded memory: clip_score is clip_l14, duplicates and misses counted', async () => {
    const pool = Pool.open({ runs: [join(dir, 'run')] });
    // 600 bytes per sort: every sort of the join spills and merges from disk
    const side = await buildDataCompColumns(pool, { metadata: [join(dir, 'm0.parquet'), join(dir, 'm1.parquet')], sortMemoryBytes: 600, tmpDir: dir });
    try {
      const s = await runFilter({ runs: [join(dir, 'run')], side, keep: ['clip_score >= p50', 'clip_b32 > 0.2'], keys: join(dir, 'clip.txt'), table: join(dir, 'clip.arrow') });
      expect(s.inputs.clip_score).toBe('clip_l14');
      const pool0 = samples.filter((x) => x.status === 'ok');
      const l14 = pool0.filter((x) => x.json && x.l14 !== undefined).map((x) => x.l14!);
      const { p } = python<{ p: number }>(`out({'p': float(np.percentile(np.array(A['v'], dtype=np.float32), 50))})`, null, { v: l14 });
      expect(s.percentiles[0].value).toBe(p);
      const want = pool0.filter((x) => x.json && x.l14 !== undefined && x.l14 >= p && x.b32! > 0.2).map((x) => x.key);
      expect(lines(join(dir, 'clip.txt'))).toEqual(want);
      const meta = s.side!.metadata as Record<string, number>;
      expect(meta.duplicate_uids).toBe(1);
      expect(meta.pool_rows_with_uid).toBe(samples.filter((x) => x.json).length);
      expect(meta.pool_rows_matched).toBe(samples.filter((x) => x.json && x.b32 !== undefined).length);
      expect(s.columns.clip_l14.missing_in_ok_rows).toBe(pool0.filter((x) => !x.json || x.l14 === undefined).length);
      const tab = tableFromIPC(readFileSync(join(dir, 'clip.arrow')));
      (tab.getChild('key')!.toArray() as string[]).forEach((k, i) => {
        const x = samples.find((y) => y.key === k)!;
        expect(tab.getChild('clip_b32')!.get(i)).toBe(x.b32); // the first metadata row of the uid, not the 0.99 duplicate
        expect(tab.getChild('clip_l14')!.get(i)).toBe(x.l14);
      });
    } finally {
      side.close();
    }
    expect(readFileSync(join(dir, 'synsets.txt'), 'utf8')).toContain('n02084071');
  });

  it('runs from the command line with captions from the parquet text (no shards)', () => {
    const out = join(dir, 'cli');
    const r = spawnSync(process.execPath, ['bin/mimic', '--no-progress', 'filter', join(dir, 'run'), '--metadata', join(dir, 'm0.parquet'), join(dir, 'm1.parquet'),
      '--basic-filter', '--keep', 'clip_score >= 0.1', '--out', out, '--keys', join(out, 'keys.txt'), '--json'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.side.filters.captions_from).toBe('metadata parquet text');
    // with the metadata's captions and sizes, a row needs a metadata match to pass the basic filter
    const want = samples.filter((x) => x.status === 'ok' && x.json && x.l14 !== undefined && x.l14 >= 0.1 && filters.basic(x.caption, x.json).keep).map((x) => x.key);
    expect(lines(join(out, 'keys.txt'))).toEqual(want);
    const bad = spawnSync(process.execPath, ['bin/mimic', '--no-progress', 'filter', join(dir, 'run'), '--shards', join(dir, 'shards/a/000000.tar'), '--basic-filter', '--out', join(dir, 'cli2')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--shards has no shard for the score file b\/000000\.arrow/);
  });
});
