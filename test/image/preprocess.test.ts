import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CLIP_MEAN,
  CLIP_STD,
  decodeResized,
  normalizeTable,
  preprocessInto,
  preprocessUint8Into,
  resizeGeometry,
  type ImageSpec,
} from '../../src/image/index.js';
import { EMOJI_DIR, NEMO_TAR, pilReference, tarMember, tempDir, write, type RefResult } from './fixtures.js';

const S = 224;
const spec: ImageSpec = { size: S, mean: CLIP_MEAN, std: CLIP_STD, resize: 'shortest' };
/** One uint8 step in normalised units for the channel with the smallest std. */
const LSB = 1 / 255 / Math.min(...CLIP_STD);

function floats(ref: RefResult): Float32Array {
  const d = ref.data!;
  return new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.length));
}

function diffStats(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / a.length };
}

async function floatOf(bytes: Uint8Array, opts = {}, s: ImageSpec = spec): Promise<Float32Array> {
  const t = new Float32Array(3 * s.size * s.size);
  await preprocessInto(bytes, s, t, 0, opts);
  return t;
}

const dir = tempDir('mimic-image-');
const files: Record<string, string> = {};
let photo: Buffer;
let refFloat: Record<string, RefResult> = {};
let refUint8: Record<string, RefResult> = {};
let refSquash: RefResult;

beforeAll(async () => {
  photo = tarMember(NEMO_TAR, '0.jpg');
  const mid = sharp(photo).resize(300); // 300×375, still a real photo
  const midRaw = await mid.clone().raw().toBuffer({ resolveWithObject: true });
  // Alpha 0 on the left third, 128 in the middle, 255 on the right: PIL's convert('RGB') keeps the colour
  // under transparent pixels, a premultiplied resize would darken it.
  const { width: mw, height: mh } = midRaw.info;
  const rgba = Buffer.alloc(mw * mh * 4);
  for (let i = 0; i < mw * mh; i++) {
    midRaw.data.copy(rgba, i * 4, i * 3, i * 3 + 3);
    const x = i % mw;
    rgba[i * 4 + 3] = x < mw / 3 ? 0 : x < (2 * mw) / 3 ? 128 : 255;
  }
  const smallRaw = await sharp(photo).extract({ left: 200, top: 300, width: 120, height: 100 }).raw().toBuffer();
  const inverted = Buffer.from(smallRaw.map((v) => 255 - v));
  const gen: Record<string, Promise<Buffer>> = {
    'photo.jpg': Promise.resolve(photo),
    'exact.png': sharp(photo).extract({ left: 100, top: 200, width: S, height: S }).png().toBuffer(),
    'exact.jpg': sharp(photo).extract({ left: 100, top: 200, width: S, height: S }).jpeg({ quality: 90 }).toBuffer(),
    'small.jpg': sharp(photo).extract({ left: 300, top: 100, width: 96, height: 80 }).jpeg({ quality: 95 }).toBuffer(),
    'alpha.png': sharp(rgba, { raw: { width: mw, height: mh, channels: 4 } }).png().toBuffer(),
    'grey.png': mid.clone().toColourspace('b-w').png().toBuffer(),
    'grey.jpg': mid.clone().toColourspace('b-w').jpeg({ quality: 92 }).toBuffer(),
    'grey-alpha.png': sharp(rgba, { raw: { width: mw, height: mh, channels: 4 } }).toColourspace('b-w').png().toBuffer(),
    'cmyk.jpg': mid.clone().toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(),
    'rgb16.png': mid.clone().toColourspace('rgb16').png().toBuffer(),
    'palette.png': mid.clone().png({ palette: true, colours: 64 }).toBuffer(),
    'photo.webp': mid.clone().webp({ lossless: true }).toBuffer(),
    // libvips reads transparent GIF pixels as (0,0,0,0); PIL shows the palette colour under the index.
    'transparent.gif': sharp(rgba, { raw: { width: mw, height: mh, channels: 4 } }).gif().toBuffer(),
    'oriented.jpg': mid.clone().jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer(),
    'plain.jpg': mid.clone().jpeg({ quality: 95 }).toBuffer(),
    'anim.gif': sharp(Buffer.concat([smallRaw, inverted]), { raw: { width: 120, height: 200, channels: 3, pageHeight: 100 } })
      .gif({ loop: 0 })
      .toBuffer(),
  };
  for (const [name, p] of Object.entries(gen)) files[name] = write(dir, name, await p);
  const names = Object.keys(files);
  const byName = (rs: RefResult[]) => Object.fromEntries(names.map((n, i) => [n, rs[i]!]));
  refFloat = byName(pilReference(names.map((n) => files[n]!), ['--size', String(S)], join(dir, 'f32')));
  refUint8 = byName(pilReference(names.map((n) => files[n]!), ['--size', String(S), '--uint8'], join(dir, 'u8')));
  [refSquash] = pilReference([files['photo.jpg']!], ['--size', String(S), '--resize', 'squash', '--uint8'], join(dir, 'sq'));
});

describe('resize geometry (torchvision Resize + CenterCrop)', () => {
  it('truncates the longer side and rounds the crop offset half to even', () => {
    expect(resizeGeometry(639, 800, spec)).toEqual({ width: 224, height: 280, left: 0, top: 28 });
    expect(resizeGeometry(720, 477, spec)).toEqual({ width: 338, height: 224, left: 57, top: 0 });
    // (229 - 224) / 2 = 2.5 → 2 and (231 - 224) / 2 = 3.5 → 4, as Python's round() does.
    expect(resizeGeometry(229, 224, spec).left).toBe(2);
    expect(resizeGeometry(231, 224, spec).left).toBe(4);
    expect(resizeGeometry(500, 100, { ...spec, resize: 'squash' })).toEqual({ width: 224, height: 224, left: 0, top: 0 });
  });
});

describe('against PIL/torchvision on a real photo', () => {
  it('matches the reference within a few LSB after a bicubic downscale (libvips)', async () => {
    expect(refFloat['photo.jpg']!.mode).toBe('RGB');
    const d = diffStats(await floatOf(photo), floats(refFloat['photo.jpg']!));
    // Measured: max 1 LSB (0.0150), mean 0.0025.
    expect(d.max).toBeLessThanOrEqual(3 * LSB);
    expect(d.mean).toBeLessThan(0.3 * LSB);
    expect(d.max).toBeGreaterThan(0); // libvips is not PIL: if this becomes exact, update the README numbers
  });

  it("is bit-identical with resampler 'pil'", async () => {
    expect(diffStats(await floatOf(photo, { resampler: 'pil' }), floats(refFloat['photo.jpg']!)).max).toBe(0);
  });

  it('is bit-identical for images already at the model size (PNG and JPEG)', async () => {
    for (const name of ['exact.png', 'exact.jpg']) {
      const d = diffStats(await floatOf(readFileSync(files[name]!)), floats(refFloat[name]!));
      expect(d.max, name).toBe(0);
    }
  });

  it('is bit-identical when enlarging a small image', async () => {
    const d = diffStats(await floatOf(readFileSync(files['small.jpg']!)), floats(refFloat['small.jpg']!));
    expect(d.max).toBe(0);
  });

  it("squash mode resizes both sides (torchvision Resize((S, S)))", async () => {
    const { pixels } = await decodeResized(photo, { ...spec, resize: 'squash' }, { resampler: 'pil' });
    expect(diffStats(pixels, refSquash.data!).max).toBe(0);
    const vips = await decodeResized(photo, { ...spec, resize: 'squash' });
    expect(diffStats(vips.pixels, refSquash.data!).max).toBeLessThanOrEqual(12);
  });

  it('matches emoji PNGs (RGBA, enlarged 64 → 224) exactly', async () => {
    const names = readdirSync(EMOJI_DIR).filter((n, i) => n.endsWith('.png') && i % 300 === 0);
    expect(names.length).toBeGreaterThan(8);
    const refs = pilReference(names.map((n) => join(EMOJI_DIR, n)), ['--size', String(S), '--uint8'], join(dir, 'emoji'));
    for (const [i, n] of names.entries()) {
      const { pixels } = await decodeResized(readFileSync(join(EMOJI_DIR, n)), spec);
      expect(diffStats(pixels, refs[i]!.data!).max, n).toBe(0);
    }
  });
});

describe('colour modes, as PIL convert("RGB") sees them', () => {
  const modes: [string, string][] = [
    ['alpha.png', 'RGBA'],
    ['grey.png', 'L'],
    ['grey.jpg', 'L'],
    ['grey-alpha.png', 'LA'],
    ['cmyk.jpg', 'CMYK'],
    ['rgb16.png', 'RGB'],
    ['palette.png', 'P'],
    ['photo.webp', 'RGB'],
    ['anim.gif', 'P'],
    ['transparent.gif', 'P'],
    ['oriented.jpg', 'RGB'],
  ];
  it.each(modes)('%s (PIL mode %s) is bit-identical with the PIL resampler and close with libvips', async (name, mode) => {
    const ref = refUint8[name]!;
    expect(ref.mode).toBe(mode);
    const bytes = readFileSync(files[name]!);
    const exact = await decodeResized(bytes, spec, { resampler: 'pil' });
    expect(diffStats(exact.pixels, ref.data!).max).toBe(0);
    const fast = await decodeResized(bytes, spec);
    const d = diffStats(fast.pixels, ref.data!);
    expect(d.max).toBeLessThanOrEqual(12);
    expect(d.mean).toBeLessThan(0.5);
  });

  it('drops alpha without compositing: transparent pixels keep their colour', async () => {
    const { pixels, source } = await decodeResized(readFileSync(files['alpha.png']!), spec, { resampler: 'pil' });
    expect(source.hasAlpha).toBe(true);
    const opaque = await decodeResized(readFileSync(files['plain.jpg']!), spec, { resampler: 'pil' });
    // Left third (alpha 0) is as bright as the opaque image there, not black.
    let a = 0;
    let b = 0;
    for (let y = 0; y < S; y++) for (let x = 0; x < 60; x++) for (let c = 0; c < 3; c++) {
      a += pixels[(y * S + x) * 3 + c]!;
      b += opaque.pixels[(y * S + x) * 3 + c]!;
    }
    expect(Math.abs(a - b) / b).toBeLessThan(0.02);
  });

  it('takes the first frame of an animated GIF', async () => {
    const { pixels, source } = await decodeResized(readFileSync(files['anim.gif']!), spec, { resampler: 'pil' });
    expect(source.pages).toBe(2);
    expect(source.height).toBe(100);
    expect(diffStats(pixels, refUint8['anim.gif']!.data!).max).toBe(0);
  });

  it('ignores EXIF orientation, as PIL does', async () => {
    const oriented = await decodeResized(readFileSync(files['oriented.jpg']!), spec);
    const plain = await decodeResized(readFileSync(files['plain.jpg']!), spec);
    expect(oriented.source.width).toBe(300);
    expect(Buffer.compare(oriented.pixels, plain.pixels)).toBe(0);
  });

  it('reads 16-bit grey as its high byte (PIL would clip it to white: a documented difference)', async () => {
    const g16 = await sharp(photo).resize(300).toColourspace('grey16').png().toBuffer();
    const raw = await sharp(g16).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    expect(raw.info.channels).toBe(1);
    const words = new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.length / 2);
    const high = Buffer.from(Array.from(words, (v) => v >> 8));
    const grey8 = await sharp(high, { raw: { width: raw.info.width, height: raw.info.height, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    const a = await decodeResized(g16, spec, { resampler: 'pil' });
    const b = await decodeResized(grey8, spec, { resampler: 'pil' });
    expect(a.source.space).toBe('grey16');
    expect(Buffer.compare(a.pixels, b.pixels)).toBe(0);
  });
});

describe('batch writers', () => {
  it('float path equals the uint8 path through the normalisation table', async () => {
    const u8 = new Uint8Array(3 * S * S);
    await preprocessUint8Into(photo, spec, u8, 0);
    const f = await floatOf(photo);
    const table = normalizeTable(spec);
    for (let i = 0; i < S * S; i += 97) {
      for (let c = 0; c < 3; c++) expect(f[c * S * S + i]).toBe(table[c * 256 + u8[i * 3 + c]!]);
    }
  });

  it('writes one row of a batch in place and nothing else', async () => {
    const n = 3 * S * S;
    const batch = new Float32Array(3 * n).fill(Number.NaN);
    await preprocessInto(photo, spec, batch, n);
    const single = await floatOf(photo);
    expect(batch.subarray(0, n).every(Number.isNaN)).toBe(true);
    expect(batch.subarray(2 * n).every(Number.isNaN)).toBe(true);
    expect(diffStats(batch.subarray(n, 2 * n), single).max).toBe(0);
    const u8 = new Uint8Array(2 * n).fill(7);
    await preprocessUint8Into(photo, spec, u8, n);
    expect(u8.subarray(0, n).every((v) => v === 7)).toBe(true);
    await expect(preprocessInto(photo, spec, batch, 2 * n + 1)).rejects.toThrow(RangeError);
  });

  it('normalisation is torchvision ToTensor + Normalize to the bit', () => {
    const table = normalizeTable(spec);
    const f = Math.fround;
    expect(table[0]).toBe(f(f(0 - f(CLIP_MEAN[0])) / f(CLIP_STD[0])));
    expect(table[512 + 255]).toBe(f(f(f(255 / 255) - f(CLIP_MEAN[2])) / f(CLIP_STD[2])));
  });
});
