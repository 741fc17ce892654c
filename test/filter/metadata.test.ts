import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { parquetWriteFile } from 'hyparquet-writer';
import tar from 'tar-stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMimicError } from '../../src/errors.js';
import { readDataCompParquet, readShardCaptions, type DataCompMetadataRow, type ShardCaptionRecord } from '../../src/filter/metadata.js';
import { DataCompFilters } from '../../src/text/datacomp.js';

const tmp = mkdtempSync(join(tmpdir(), 'mimic-metadata-'));
const NEMO = '../shared/fixtures/wds/nemo-00000.tar';
const COMPRESSED = '../shared/fixtures/wds/compressed.tar';

async function writeTar(path: string, members: [string, Buffer | string][]): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(path));
  for (const [name, data] of members) {
    await new Promise<void>((resolve, reject) => pack.entry({ name, mtime: new Date(0) }, data, (e) => (e ? reject(e) : resolve())));
  }
  pack.finalize();
  await done;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const uid = (i: number) => i.toString(16).padStart(32, '0');

describe('readShardCaptions', () => {
  const shard = join(tmp, 'captions-000000.tar');
  // a JPEG-sized blob that must never be decoded or kept
  const image = Buffer.alloc(256 * 1024, 0xab);

  beforeAll(async () => {
    await writeTar(shard, [
      ['s0.jpg', image],
      ['s0.txt', 'A dog on a beach'],
      ['s0.json', JSON.stringify({ uid: uid(0), original_width: 640, original_height: 480 })],
      ['s1.jpg', image],
      ['s1.txt', Buffer.from([0x61, 0x62, 0xff, 0x63])], // invalid UTF-8
      ['s1.json', JSON.stringify({ uid: uid(1) })],
      ['s2.jpg', image],
      ['s2.json', '\ufeff{"uid": "' + uid(2) + '"}'], // BOM, as Python's json.loads(bytes) accepts
      ['s3.txt', '\ufeffcaption with a BOM'],
      ['s3.json', '{"uid": '],
      ['s4.txt', 'an array json'],
      ['s4.json', '[1, 2]'],
      ['s5.TXT', 'Upper-case extension'],
      ['s5.json', JSON.stringify({ uid: 12345 })],
      ['s0.txt', 'the key s0 again, later in the shard'],
    ]);
  });

  it('yields every sample in shard order with row, key, uid, caption and json', async () => {
    const rows = await collect(readShardCaptions(shard));
    expect(rows.map((r) => [r.row, r.key])).toEqual([
      [0, 's0'],
      [1, 's1'],
      [2, 's2'],
      [3, 's3'],
      [4, 's4'],
      [5, 's5'],
      [6, 's0'],
    ]);
    expect(rows[0]).toEqual<ShardCaptionRecord>({
      row: 0,
      key: 's0',
      uid: uid(0),
      caption: 'A dog on a beach',
      json: { uid: uid(0), original_width: 640, original_height: 480 },
      status: 'ok',
      error: null,
    });
  });

  it('reports invalid UTF-8, missing captions and bad json per row, keeping what is usable', async () => {
    const rows = await collect(readShardCaptions(shard));
    expect(rows[1]).toMatchObject({ caption: null, uid: uid(1), status: 'bad_caption' });
    expect(rows[1].error).toMatch(/UTF-8/);
    expect(rows[2]).toMatchObject({ caption: null, uid: uid(2), status: 'no_caption', error: null });
    expect(rows[3]).toMatchObject({ caption: '\ufeffcaption with a BOM', json: null, uid: null, status: 'bad_json' });
    expect(rows[4]).toMatchObject({ caption: 'an array json', json: null, status: 'bad_json' });
    expect(rows[4].error).toMatch(/not an object/);
    // extensions are lower-cased by the reader; a non-string uid is no uid
    expect(rows[5]).toMatchObject({ caption: 'Upper-case extension', uid: null, json: { uid: 12345 }, status: 'ok' });
    expect(rows[6]).toMatchObject({ key: 's0', caption: 'the key s0 again, later in the shard', json: null });
  });

  it('takes other caption and metadata members when asked', async () => {
    const rows = await collect(readShardCaptions(shard, { captionKey: 'json', metadataKey: 'none' }));
    expect(rows[0].caption).toBe(JSON.stringify({ uid: uid(0), original_width: 640, original_height: 480 }));
    expect(rows[0].json).toBe(null);
  });

  it('reads the NeMo-Curator shard: caption, a json without uid or sizes, so the basic filter says no_size', async () => {
    const rows = await collect(readShardCaptions(NEMO));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      row: 0,
      key: '0',
      uid: null,
      caption: 'A wine bottle outfitted with two forks in its cork and a duck head on top.',
      json: { id: '0', caption: 'A wine bottle outfitted with two forks in its cork and a duck head on top.' },
      status: 'ok',
    });
    const filters = await DataCompFilters.load({});
    expect(filters.basic(rows[0].caption, rows[0].json)).toEqual({ keep: false, reason: 'no_size' });
    expect(filters.english(rows[0].caption!).english).toBe(true);
  });

  it('webdataset keys .txt.gz members as "txt.gz": no "txt" caption there', async () => {
    const rows = await collect(readShardCaptions(COMPRESSED));
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.caption === null && r.status === 'no_caption')).toBe(true);
    expect(rows[0].key).toBe('compressed/0001');
  });

  it('a shard cut short yields what it could read, then throws naming the shard', async () => {
    const { readFileSync } = await import('node:fs');
    const whole = readFileSync(shard);
    const cut = join(tmp, 'cut.tar');
    // keep s0 (3 members, the image 256 KiB) and part of s1's image
    writeFileSync(cut, whole.subarray(0, 512 * 6 + 256 * 1024 + 300 * 1024));
    const seen: ShardCaptionRecord[] = [];
    await expect(
      (async () => {
        for await (const r of readShardCaptions(cut)) seen.push(r);
      })(),
    ).rejects.toSatisfy((e: unknown) => isMimicError(e) && (e.code === 'E_TAR' || e.code === 'E_SOURCE'));
    expect(seen[0]).toMatchObject({ key: 's0', caption: 'A dog on a beach', status: 'ok' });
  });

  it('a missing shard is an E_SOURCE error', async () => {
    await expect(collect(readShardCaptions(join(tmp, 'nope.tar')))).rejects.toSatisfy(
      (e: unknown) => isMimicError(e) && e.code === 'E_SOURCE',
    );
  });
});

describe('readDataCompParquet', () => {
  const n = 10;
  const a = join(tmp, 'a.parquet');
  const b = join(tmp, 'b.parquet');
  const gz = join(tmp, 'gz.parquet');
  const noUid = join(tmp, 'nouid.parquet');

  const columns = (offset: number, count: number) => [
    { name: 'uid', data: Array.from({ length: count }, (_, i) => uid(offset + i)), type: 'STRING' as const },
    { name: 'url', data: Array.from({ length: count }, (_, i) => `http://example.com/${offset + i}.jpg`), type: 'STRING' as const },
    { name: 'text', data: Array.from({ length: count }, (_, i) => (i === 3 ? null : `caption ${offset + i} 🐶`)), type: 'STRING' as const },
    { name: 'original_width', data: Array.from({ length: count }, (_, i) => BigInt(200 + i)), type: 'INT64' as const },
    { name: 'original_height', data: Array.from({ length: count }, (_, i) => (i === 5 ? null : BigInt(600 + i))), type: 'INT64' as const },
    { name: 'clip_b32_similarity_score', data: Array.from({ length: count }, (_, i) => 0.25 + i / 100), type: 'FLOAT' as const },
    { name: 'clip_l14_similarity_score', data: Array.from({ length: count }, (_, i) => 0.2 + i / 1000), type: 'DOUBLE' as const },
  ];

  beforeAll(() => {
    parquetWriteFile({ filename: a, columnData: columns(0, n), rowGroupSize: 3 });
    parquetWriteFile({ filename: b, columnData: columns(100, 4) });
    parquetWriteFile({
      filename: gz,
      columnData: columns(200, 5),
      codec: 'GZIP',
      compressors: { GZIP: (input: Uint8Array) => new Uint8Array(gzipSync(input)) },
    });
    parquetWriteFile({ filename: noUid, columnData: columns(0, 2).filter((c) => c.name !== 'uid') });
  });

  it('streams rows of several files across row groups with DataComp column names and plain numbers', async () => {
    const rows = await collect(readDataCompParquet([a, b]));
    expect(rows).toHaveLength(n + 4);
    expect(rows.map((r) => r.uid)).toEqual([...Array.from({ length: n }, (_, i) => uid(i)), ...[0, 1, 2, 3].map((i) => uid(100 + i))]);
    expect(rows[0]).toEqual<DataCompMetadataRow>({
      uid: uid(0),
      text: 'caption 0 🐶',
      original_width: 200,
      original_height: 600,
      clip_b32_similarity_score: Math.fround(0.25),
      clip_l14_similarity_score: 0.2,
    });
    // nulls are left out, never turned into 0 or ''
    expect('text' in rows[3]).toBe(false);
    expect('original_height' in rows[5]).toBe(false);
    expect(rows[5].original_width).toBe(205);
    expect(typeof rows[9].original_width).toBe('number');
  });

  it('reads only the requested columns', async () => {
    const rows = await collect(readDataCompParquet([a], { columns: ['clip_l14_similarity_score'] }));
    expect(rows[2]).toEqual({ uid: uid(2), clip_l14_similarity_score: 0.202 });
  });

  it('reads gzip-compressed files', async () => {
    const rows = await collect(readDataCompParquet([gz]));
    expect(rows.map((r) => r.uid)).toEqual([0, 1, 2, 3, 4].map((i) => uid(200 + i)));
  });

  it('feeds the basic filter (missing size -> no_size)', async () => {
    const filters = await DataCompFilters.load({});
    const rows = await collect(readDataCompParquet([a]));
    expect(filters.basic('a dog on the beach', rows[0] as unknown as Record<string, unknown>)).toEqual({ keep: true });
    expect(filters.basic('a dog on the beach', rows[5] as unknown as Record<string, unknown>)).toEqual({ keep: false, reason: 'no_size' });
  });

  it('names the file for a missing uid column, a corrupt file and a missing file', async () => {
    await expect(collect(readDataCompParquet([noUid]))).rejects.toSatisfy(
      (e: unknown) => isMimicError(e) && e.code === 'E_IO' && e.file === noUid && /uid/.test(e.message),
    );
    const bad = join(tmp, 'bad.parquet');
    writeFileSync(bad, 'PAR1 this is not parquet at all PAR1');
    await expect(collect(readDataCompParquet([bad]))).rejects.toSatisfy((e: unknown) => isMimicError(e) && e.file === bad);
    const missing = join(tmp, 'missing.parquet');
    await expect(collect(readDataCompParquet([missing]))).rejects.toSatisfy((e: unknown) => isMimicError(e) && e.file === missing);
  });
});
