/**
 * The demo dataset: real emoji images with captions, written as WebDataset shards in the img2dataset / DataComp
 * layout (`{key}.jpg`, `{key}.txt`, `{key}.json` with a 32-hex `uid`, url, sizes, caption). Two parts:
 *
 * - `reference/`: clean pairs in some styles (by default Google's drawings, plus every default style for half of the
 *   emoji), to train a reference CLIP;
 * - `pool/`: the other emoji drawn in other styles (by default Twitter's and OpenMoji's), in which a known fraction of
 *   captions is replaced: *swapped* with another emoji's caption or *corrupted* into unrelated text.
 *
 * `truth.json` records every pool row's label. The choice of noisy rows is nested across noise rates (the noisy
 * rows at 10% are among those at 20%, with the same replacement captions), so pools at several rates differ only
 * where they must. Everything is a pure function of the options: the same options give the same bytes.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MimicError } from '../errors.js';
import { ShardWriter } from '../wds/shard-writer.js';
import { writeFileAtomic } from '../atomic-file.js';
import { captionCorpus, captionWords, cleanCaption, corruptCaption } from './captions.js';
import { EMOJI_STYLES, loadEmojiCatalog, type EmojiEntry, type EmojiStyle } from './catalog.js';
import { renderEmoji, type DemoImageFormat } from './images.js';
import { randInt, rngFor, shuffleInPlace } from './random.js';

export type NoiseLabel = 'clean' | 'swapped' | 'corrupted';

export const TRUTH_FORMAT = 'mimic-demo-truth/1';
export const TRUTH_FILE = 'truth.json';
/** Every text the captions can be made of (see captionCorpus), for tools that need the vocabulary up front. */
export const CORPUS_FILE = 'corpus.txt';

export interface DemoDatasetOptions {
  /** Output folder; gets reference/, pool/ and truth.json. */
  out: string;
  /** Seed of every random choice (pool order, which rows are noisy, replacement captions). */
  seed?: number;
  /** Fraction of pool rows whose caption is replaced, in [0, 1). */
  noise?: number;
  /** Share of the noisy rows that are swapped (the rest are corrupted), in [0, 1]. */
  swapShare?: number;
  referenceStyles?: readonly EmojiStyle[];
  poolStyles?: readonly EmojiStyle[];
  /** Use only this many emoji (a fixed subset, the same for every seed), e.g. for quick tests. */
  limit?: number;
  /**
   * Fraction of the emoji kept out of the pool and given to the reference set in every style, so that the
   * reference learns the pool's drawing styles (on other emoji) as well as the pool's emoji (in other styles),
   * the way a web-scale reference CLIP has seen both; the pool holds the rest, in the pool styles only.
   */
  referenceOnly?: number;
  samplesPerShard?: number;
  imageSize?: number;
  imageFormat?: DemoImageFormat;
  jpegQuality?: number;
  /** Rendered images by `${style}:${hexcode}`, shared between builds (pools at several noise rates). */
  imageCache?: Map<string, Buffer>;
  /**
   * Write the reference set too (default). `mimic demo` with the shipped models needs only the pool, which takes a
   * third of the time to render.
   */
  writeReference?: boolean;
  /** Remove an existing reference/ and pool/ in `out` first (otherwise a non-empty one is an error). */
  force?: boolean;
  /** Where to resolve the emoji npm packages from. */
  resolveFrom?: string;
  /** Concurrent image renders. */
  concurrency?: number;
}

export const DEMO_DATASET_DEFAULTS = {
  seed: 0,
  noise: 0.3,
  swapShare: 0.5,
  // The styles whose image licences allow redistribution and any use: Noto (Apache 2.0), Twemoji (CC BY 4.0),
  // OpenMoji (CC BY-SA 4.0). Apple's (not licensed for commercial use) and Facebook's (no clear licence) are opt-in.
  referenceStyles: ['google'] as readonly EmojiStyle[],
  poolStyles: ['twitter', 'openmoji'] as readonly EmojiStyle[],
  referenceOnly: 0.5,
  samplesPerShard: 1000,
  imageSize: 64,
  imageFormat: 'jpg' as DemoImageFormat,
  jpegQuality: 90,
  concurrency: 4,
};

export interface TruthRow {
  uid: string;
  /** Shard file name inside pool/. */
  shard: string;
  row: number;
  key: string;
  label: NoiseLabel;
  style: EmojiStyle;
  hexcode: string;
  /** The emoji's CLDR name. */
  name: string;
  caption: string;
  /** The caption it would have had if clean. */
  cleanCaption: string;
}

export interface DemoTruth {
  format: typeof TRUTH_FORMAT;
  seed: number;
  noise: number;
  swapShare: number;
  referenceStyles: EmojiStyle[];
  poolStyles: EmojiStyle[];
  referenceOnly: number;
  /** The `limit` option (null: every emoji of the catalogue), and samples per shard: what a rebuild must match. */
  limit: number | null;
  samplesPerShard: number;
  emoji: number;
  counts: { reference: number; pool: number; clean: number; swapped: number; corrupted: number };
  referenceShards: string[];
  poolShards: string[];
  /** Pool rows in shard order. */
  rows: TruthRow[];
}

export interface DemoDataset {
  out: string;
  referenceDir: string;
  poolDir: string;
  /** Absolute shard paths. */
  referenceShards: string[];
  poolShards: string[];
  truthFile: string;
  truth: DemoTruth;
}

interface Item {
  entry: EmojiEntry;
  style: EmojiStyle;
  uid: string;
}

/** The sample's uid: a 32-hex digest of style and code points, stable across seeds and noise rates. */
export function demoUid(style: EmojiStyle, hexcode: string): string {
  return createHash('md5').update(`grad-mimic-demo:${style}:${hexcode}`).digest('hex');
}

/** img2dataset's key: shard number on 5 digits, then the index in the shard on 4. */
function sampleKey(shard: number, index: number): string {
  return `${String(shard).padStart(5, '0')}${String(index).padStart(4, '0')}`;
}

function checkOptions(o: Required<Omit<DemoDatasetOptions, 'limit' | 'imageCache' | 'resolveFrom' | 'writeReference'>>): void {
  const bad = (msg: string): never => {
    throw new MimicError('E_USAGE', `demo dataset: ${msg}`);
  };
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) bad(`seed must be a non-negative integer, got ${o.seed}`);
  if (!(o.noise >= 0 && o.noise < 1)) bad(`noise must be in [0, 1), got ${o.noise}`);
  if (!(o.swapShare >= 0 && o.swapShare <= 1)) bad(`swap share must be in [0, 1], got ${o.swapShare}`);
  if (!Number.isInteger(o.samplesPerShard) || o.samplesPerShard < 1 || o.samplesPerShard > 10_000) {
    bad(`samples per shard must be an integer in 1..10000, got ${o.samplesPerShard}`);
  }
  if (!Number.isInteger(o.imageSize) || o.imageSize < 8 || o.imageSize > 512) bad(`image size must be in 8..512, got ${o.imageSize}`);
  for (const s of [...o.referenceStyles, ...o.poolStyles]) {
    if (!EMOJI_STYLES.includes(s)) bad(`unknown style "${s}" (styles: ${EMOJI_STYLES.join(', ')})`);
  }
  const overlap = o.referenceStyles.filter((s) => o.poolStyles.includes(s));
  if (overlap.length) bad(`style ${overlap.join(', ')} is in both the reference and the pool`);
  if (o.poolStyles.length === 0) bad('the pool needs at least one style');
  if (!(o.referenceOnly >= 0 && o.referenceOnly < 1)) bad(`reference-only share must be in [0, 1), got ${o.referenceOnly}`);
}

export async function buildDemoDataset(options: DemoDatasetOptions): Promise<DemoDataset> {
  const o = {
    ...DEMO_DATASET_DEFAULTS,
    force: false,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as Required<Omit<DemoDatasetOptions, 'limit' | 'imageCache' | 'resolveFrom' | 'writeReference'>> & DemoDatasetOptions;
  checkOptions(o);
  let entries = loadEmojiCatalog({
    styles: [...o.referenceStyles, ...o.poolStyles],
    ...(o.resolveFrom ? { resolveFrom: o.resolveFrom } : {}),
  });
  if (o.limit !== undefined) {
    if (!Number.isInteger(o.limit) || o.limit < 2) throw new MimicError('E_USAGE', `demo dataset: limit must be an integer ≥ 2, got ${o.limit}`);
    // A subset fixed by the code points alone, spread over every category.
    const rank = (e: EmojiEntry) => createHash('sha256').update(e.hexcode).digest().readUInt32LE(0);
    entries = [...entries].sort((a, b) => rank(a) - rank(b)).slice(0, o.limit);
  }
  const words = captionWords(entries);
  const cache = o.imageCache ?? new Map<string, Buffer>();
  const render = { size: o.imageSize, format: o.imageFormat, quality: o.jpegQuality };
  const cacheKey = (it: Item) => `${it.style}:${it.entry.hexcode}:${o.imageSize}:${o.imageFormat}:${o.jpegQuality}`;

  // The reference-only emoji: a fixed share by code point, the same for every seed and noise rate.
  const shareRank = (e: EmojiEntry) => createHash('sha256').update(`reference-only:${e.hexcode}`).digest().readUInt32LE(0) / 2 ** 32;
  const referenceOnly = new Set(entries.filter((e) => shareRank(e) < o.referenceOnly).map((e) => e.hexcode));
  const items = (styles: readonly EmojiStyle[], which: (e: EmojiEntry) => boolean): Item[] => {
    const out: Item[] = [];
    for (const style of styles) {
      for (const entry of entries) {
        if (entry.images[style] && which(entry)) out.push({ entry, style, uid: demoUid(style, entry.hexcode) });
      }
    }
    return out;
  };
  const reference = shuffleInPlace([
    ...items(o.referenceStyles, () => true),
    ...items(o.poolStyles, (e) => referenceOnly.has(e.hexcode)),
  ], rngFor(0, 'reference-order')); // one order for every seed: the reference is trained once
  const pool = shuffleInPlace(items(o.poolStyles, (e) => !referenceOnly.has(e.hexcode)), rngFor(o.seed, 'pool-order'));

  // Render every image up front, a few at a time (libvips runs each on its own thread).
  const writeReference = o.writeReference ?? true;
  const todo = [...(writeReference ? reference : []), ...pool].filter((it) => !cache.has(cacheKey(it)));
  for (let i = 0; i < todo.length; i += o.concurrency) {
    const chunk = todo.slice(i, i + o.concurrency);
    const bytes = await Promise.all(chunk.map((it) => renderEmoji(it.entry.images[it.style]!, render)));
    chunk.forEach((it, j) => cache.set(cacheKey(it), bytes[j]!));
  }

  // Noisy rows: a prefix of one fixed permutation of the pool, so lower noise rates pick a subset.
  const noiseOrder = shuffleInPlace(pool.map((it) => it.uid).sort(), rngFor(o.seed, 'noise-order'));
  const nNoisy = Math.round(o.noise * pool.length);
  const labels = new Map<string, NoiseLabel>();
  noiseOrder.slice(0, nNoisy).forEach((uid, j) => {
    // Exactly round(k·swapShare) swapped rows in every prefix of length k.
    const swapped = Math.floor((j + 1) * o.swapShare) > Math.floor(j * o.swapShare);
    labels.set(uid, swapped ? 'swapped' : 'corrupted');
  });

  const captionOf = (it: Item): { label: NoiseLabel; caption: string; clean: string } => {
    const clean = cleanCaption(it.entry, it.style);
    const label = labels.get(it.uid) ?? 'clean';
    if (label === 'clean') return { label, caption: clean, clean };
    const rand = rngFor(o.seed, `caption:${it.uid}`);
    if (label === 'corrupted') return { label, caption: corruptCaption(words, rand), clean };
    let other: EmojiEntry;
    do other = entries[randInt(rand, entries.length)]!;
    while (other.name === it.entry.name);
    return { label, caption: cleanCaption(other, it.style), clean };
  };

  const out = options.out;
  const referenceDir = join(out, 'reference');
  const poolDir = join(out, 'pool');
  for (const dir of writeReference ? [referenceDir, poolDir] : [poolDir]) await prepareDir(dir, o.force);

  const size = o.imageSize;
  type RowSink = (it: Item, shard: string, row: number, key: string, c: ReturnType<typeof captionOf>) => void;
  const writeSet = async (dir: string, prefix: string, set: Item[], onRow?: RowSink): Promise<string[]> => {
    const shards: string[] = [];
    for (let s = 0; s * o.samplesPerShard < set.length; s++) {
      const name = `${prefix}-${String(s).padStart(6, '0')}.tar`;
      const writer = new ShardWriter(join(dir, name));
      try {
        const part = set.slice(s * o.samplesPerShard, (s + 1) * o.samplesPerShard);
        for (const [i, it] of part.entries()) {
          const key = sampleKey(s, i);
          const c = captionOf(it);
          const image = cache.get(cacheKey(it))!;
          const meta = {
            uid: it.uid,
            url: it.entry.images[it.style]!.url,
            caption: c.caption,
            key,
            status: 'success',
            error_message: null,
            width: size,
            height: size,
            original_width: size,
            original_height: size,
            sha256: createHash('sha256').update(image).digest('hex'),
          };
          await writer.add(key, { [o.imageFormat]: image, txt: c.caption, json: JSON.stringify(meta) });
          onRow?.(it, name, i, key, c);
        }
        await writer.close();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      shards.push(name);
    }
    return shards;
  };

  const rows: TruthRow[] = [];
  // The reference set is clean whatever the noise: only pool uids are ever labelled.
  const referenceShards = writeReference ? await writeSet(referenceDir, 'reference', reference) : [];
  const poolShards = await writeSet(poolDir, 'pool', pool, (it, shard, row, key, c) => {
    rows.push({ uid: it.uid, shard, row, key, label: c.label, style: it.style, hexcode: it.entry.hexcode, name: it.entry.name, caption: c.caption, cleanCaption: c.clean });
  });

  const count = (l: NoiseLabel) => rows.filter((r) => r.label === l).length;
  const truth: DemoTruth = {
    format: TRUTH_FORMAT,
    seed: o.seed,
    noise: o.noise,
    swapShare: o.swapShare,
    referenceStyles: [...o.referenceStyles],
    poolStyles: [...o.poolStyles],
    referenceOnly: o.referenceOnly,
    limit: o.limit ?? null,
    samplesPerShard: o.samplesPerShard,
    emoji: entries.length,
    counts: { reference: reference.length, pool: pool.length, clean: count('clean'), swapped: count('swapped'), corrupted: count('corrupted') },
    referenceShards: referenceShards.map((s) => `reference/${s}`),
    poolShards: poolShards.map((s) => `pool/${s}`),
    rows,
  };
  const truthFile = join(out, TRUTH_FILE);
  await writeFileAtomic(truthFile, JSON.stringify(truth, null, 1) + '\n');
  await writeFileAtomic(join(out, CORPUS_FILE), captionCorpus(entries).join('\n') + '\n');
  return {
    out,
    referenceDir,
    poolDir,
    referenceShards: referenceShards.map((s) => join(referenceDir, s)),
    poolShards: poolShards.map((s) => join(poolDir, s)),
    truthFile,
    truth,
  };
}

async function prepareDir(dir: string, force: boolean): Promise<void> {
  const existing = await readdir(dir).catch(() => [] as string[]);
  if (existing.length > 0) {
    if (!force) {
      throw new MimicError('E_OUTPUT', `${dir} is not empty`, { file: dir, hint: 'choose another folder, or pass force to replace it' });
    }
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
}

/** Read a truth file written by buildDemoDataset. */
export async function readDemoTruth(file: string): Promise<DemoTruth> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new MimicError('E_IO', `cannot read the demo truth file ${file}: ${(e as Error).message}`, {
      file,
      hint: 'build the demo data again (scripts/build_demo_shards.mjs)',
    });
  }
  const t = json as Partial<DemoTruth>;
  if (t.format !== TRUTH_FORMAT || !Array.isArray(t.rows)) {
    throw new MimicError('E_IO', `${file} is not a demo truth file (format ${JSON.stringify(t.format)}, expected ${TRUTH_FORMAT})`, { file });
  }
  return t as DemoTruth;
}
