import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemoDataset, readDemoTruth, type DemoDataset } from '../../src/demo/dataset.js';
import { loadEmojiCatalog } from '../../src/demo/catalog.js';
import { cleanCaption } from '../../src/demo/captions.js';
import { openShard } from '../../src/wds/shard-reader.js';

const tmp = mkdtempSync(join(os.tmpdir(), 'mimic-demo-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface ReadSample {
  shard: string;
  key: string;
  exts: string[];
  image: Buffer;
  txt: string;
  json: Record<string, unknown>;
}

async function readAll(shards: string[]): Promise<ReadSample[]> {
  const out: ReadSample[] = [];
  for (const s of shards) {
    const opened = await openShard(s);
    for await (const sample of opened.samples) {
      expect(sample.problem).toBeUndefined();
      out.push({
        shard: s,
        key: sample.key,
        exts: sample.members.map((m) => m.ext),
        image: sample.files.get('jpg')!,
        txt: sample.files.get('txt')!.toString('utf8'),
        json: JSON.parse(sample.files.get('json')!.toString('utf8')) as Record<string, unknown>,
      });
    }
  }
  return out;
}

const OPTS = { limit: 40, samplesPerShard: 25, noise: 0.3, seed: 3 } as const;

describe('demo dataset', () => {
  let ds: DemoDataset;
  let pool: ReadSample[];
  let reference: ReadSample[];
  const cache = new Map<string, Buffer>();

  beforeAll(async () => {
    ds = await buildDemoDataset({ ...OPTS, out: join(tmp, 'a'), imageCache: cache });
    pool = await readAll(ds.poolShards);
    reference = await readAll(ds.referenceShards);
  });

  it('writes img2dataset-style samples that read back with openShard', async () => {
    const t = ds.truth;
    expect(t.emoji).toBe(40);
    expect(pool.length).toBe(t.counts.pool);
    expect(reference.length).toBe(t.counts.reference);
    expect(ds.poolShards.length).toBe(Math.ceil(t.counts.pool / 25));
    for (const s of [...pool, ...reference]) {
      expect(s.exts).toEqual(['jpg', 'txt', 'json']);
      expect(s.key).toMatch(/^\d{9}$/);
      expect(s.json).toMatchObject({ key: s.key, caption: s.txt, status: 'success', width: 64, height: 64, original_width: 64, original_height: 64 });
      expect(s.json.uid).toMatch(/^[0-9a-f]{32}$/);
      expect(s.json.url).toMatch(/^npm:(emoji-datasource-(google|twitter|apple|facebook)@[\d.]+\/img\/\w+\/64\/[0-9a-f-]+\.png|openmoji@[\d.]+\/color\/svg\/[0-9A-F-]+\.svg)$/);
    }
    const uids = [...pool, ...reference].map((s) => s.json.uid);
    expect(new Set(uids).size).toBe(uids.length);
    const meta = await sharp(pool[0]!.image).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['jpeg', 64, 64, 3]);
  });

  it('records the truth: exact noise counts, replaced captions, rows in shard order', async () => {
    const t = await readDemoTruth(ds.truthFile);
    const nNoisy = Math.round(0.3 * t.counts.pool);
    expect(t.counts.swapped + t.counts.corrupted).toBe(nNoisy);
    expect(t.counts.swapped).toBe(Math.floor(nNoisy * 0.5));
    expect(t.rows.length).toBe(pool.length);
    t.rows.forEach((r, i) => {
      const s = pool[i]!;
      expect(s.json.uid).toBe(r.uid);
      expect(s.key).toBe(r.key);
      expect(s.shard.endsWith(r.shard)).toBe(true);
      expect(s.txt).toBe(r.caption);
      if (r.label === 'clean') expect(r.caption).toBe(r.cleanCaption);
      else expect(r.caption).not.toBe(r.cleanCaption);
    });
    // Swapped captions are other emoji's clean captions; the reference set is clean.
    const catalog = loadEmojiCatalog();
    for (const r of t.rows.filter((x) => x.label === 'swapped')) {
      const sources = catalog.filter((e) => cleanCaption(e, r.style) === r.caption);
      expect(sources.length).toBeGreaterThan(0);
      expect(sources.every((e) => e.hexcode !== r.hexcode)).toBe(true);
    }
    const poolUids = new Set(t.rows.map((r) => r.uid));
    expect(reference.some((s) => poolUids.has(s.json.uid as string))).toBe(false);
  });

  it('keeps the reference-only emoji out of the pool and shows the reference every style', () => {
    const t = ds.truth;
    const poolEmoji = new Set(t.rows.map((r) => r.hexcode));
    const refUrls = reference.map((s) => String(s.json.url));
    const hex = (url: string) => url.replace(/^.*\//, '').replace(/\.(png|svg)$/, '').toUpperCase();
    const refOnly = new Set(refUrls.filter((u) => /twitter|openmoji/.test(u)).map(hex));
    expect(refOnly.size).toBeGreaterThan(5);
    for (const h of refOnly) expect(poolEmoji.has(h)).toBe(false);
    expect(new Set(t.rows.map((r) => r.style))).toEqual(new Set(['twitter', 'openmoji']));
    expect(new Set(reference.map((s) => String(s.json.url).split('@')[0]))).toEqual(new Set(['npm:emoji-datasource-google', 'npm:emoji-datasource-twitter', 'npm:openmoji']));
  });

  it('is deterministic: the same options give the same bytes, without the image cache too', async () => {
    const again = await buildDemoDataset({ ...OPTS, out: join(tmp, 'b') });
    for (const [i, s] of ds.poolShards.entries()) expect(readFileSync(again.poolShards[i]!).equals(readFileSync(s))).toBe(true);
    for (const [i, s] of ds.referenceShards.entries()) expect(readFileSync(again.referenceShards[i]!).equals(readFileSync(s))).toBe(true);
    expect(readFileSync(again.truthFile, 'utf8')).toBe(readFileSync(ds.truthFile, 'utf8'));
    // The pool alone (what `mimic demo` needs with the shipped models) is the same pool.
    const poolOnly = await buildDemoDataset({ ...OPTS, out: join(tmp, 'f'), writeReference: false, imageCache: cache });
    expect(poolOnly.referenceShards).toEqual([]);
    expect(existsSync(join(tmp, 'f', 'reference'))).toBe(false);
    for (const [i, s] of ds.poolShards.entries()) expect(readFileSync(poolOnly.poolShards[i]!).equals(readFileSync(s))).toBe(true);
  });

  it('nests noise rates: the noisy rows at 10% are among those at 30%, with the same captions', async () => {
    const low = await buildDemoDataset({ ...OPTS, noise: 0.1, out: join(tmp, 'c'), imageCache: cache });
    const high = new Map(ds.truth.rows.map((r) => [r.uid, r]));
    const noisyLow = low.truth.rows.filter((r) => r.label !== 'clean');
    expect(noisyLow.length).toBe(Math.round(0.1 * low.truth.counts.pool));
    for (const r of noisyLow) {
      expect(high.get(r.uid)!.label).toBe(r.label);
      expect(high.get(r.uid)!.caption).toBe(r.caption);
    }
    // Another seed draws another pool order and other noisy rows.
    const other = await buildDemoDataset({ ...OPTS, seed: 4, out: join(tmp, 'd'), imageCache: cache });
    expect(other.truth.rows.map((r) => r.uid)).not.toEqual(ds.truth.rows.map((r) => r.uid));
  });

  it('needs only the packages of the styles it uses, and names a missing one', async () => {
    const catalog = loadEmojiCatalog({ styles: ['google', 'twitter'] });
    expect(catalog.every((e) => !e.images.apple && !e.images.openmoji && e.images.google)).toBe(true);
    // Resolved from a folder without node_modules, nothing can be found: the error says what to install.
    await expect(buildDemoDataset({ ...OPTS, out: join(tmp, 'g'), resolveFrom: tmp })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringMatching(/needs the npm package emoji-datasource-google/),
      hint: expect.stringMatching(/npm ci/),
    });
  });

  it('refuses bad options and a non-empty folder with clear errors', async () => {
    await expect(buildDemoDataset({ ...OPTS, out: join(tmp, 'e'), noise: 1 })).rejects.toThrow(/noise must be in \[0, 1\)/);
    await expect(buildDemoDataset({ ...OPTS, out: join(tmp, 'e'), poolStyles: ['google'] })).rejects.toThrow(/google is in both/);
    await expect(buildDemoDataset({ ...OPTS, out: join(tmp, 'e'), poolStyles: ['comic' as never] })).rejects.toThrow(/unknown style "comic"/);
    await expect(buildDemoDataset({ ...OPTS, out: join(tmp, 'a'), imageCache: cache })).rejects.toMatchObject({ code: 'E_OUTPUT' });
    await expect(buildDemoDataset({ ...OPTS, out: join(tmp, 'a'), imageCache: cache, force: true })).resolves.toBeTruthy();
  });
});
