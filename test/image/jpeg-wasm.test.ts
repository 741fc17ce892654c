/**
 * The wasm JPEG decoder (src/image/jpeg-wasm.ts) must give libvips' pixels exactly, on real and generated JPEGs
 * of every common kind, and must leave every bad or unusual JPEG to libvips so that statuses and messages do
 * not depend on the decoder. decodeForFrame reads the header once and decodes as decodeRgb/decodeResized do.
 */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { CLIP_MEAN, CLIP_STD, decodeForFrame, decodeResized, decodeRgb, type ImageSpec } from '../../src/image/index.js';
import { decodeJpegRgb } from '../../src/image/jpeg-wasm.js';
import { NEMO_TAR, tarMember } from './fixtures.js';

const photo = tarMember(NEMO_TAR, '0.jpg'); // a real camera JPEG, 639×800, with EXIF
const spec: ImageSpec = { size: 64, mean: CLIP_MEAN, std: CLIP_STD, resize: 'shortest' };

async function goodJpegs(): Promise<Record<string, Buffer>> {
  const crop = () => sharp(photo).extract({ left: 37, top: 101, width: 301, height: 203 });
  return {
    'camera original': photo,
    'odd size, 4:2:0, q95': await crop().jpeg({ quality: 95 }).toBuffer(),
    '4:4:4': await crop().jpeg({ quality: 90, chromaSubsampling: '4:4:4' }).toBuffer(),
    progressive: await crop().jpeg({ quality: 80, progressive: true }).toBuffer(),
    'mozjpeg (trellis, progressive)': await crop().jpeg({ quality: 75, mozjpeg: true }).toBuffer(),
    grey: await crop().greyscale().jpeg({ quality: 85 }).toBuffer(),
    'EXIF orientation 6 (not applied, as PIL)': await crop().jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toBuffer(),
    '1×1': await sharp(photo).resize(1, 1).jpeg().toBuffer(),
    '7×5': await sharp(photo).resize(7, 5, { fit: 'fill' }).jpeg({ quality: 100 }).toBuffer(),
  };
}

const libvips = (b: Uint8Array) => decodeRgb(b, { jpegDecoder: 'libvips' });

/** What a decode gives, comparable across decoders: pixels, or the error's kind and message. */
async function outcome(p: Promise<{ pixels: Buffer }>): Promise<{ pixels?: string; error?: string }> {
  try {
    return { pixels: (await p).pixels.toString('base64') };
  } catch (e) {
    return { error: `${(e as { kind?: string }).kind}: ${(e as Error).message}` };
  }
}

describe('wasm JPEG decoder', () => {
  it('decodes every common kind of JPEG to exactly the pixels libvips gives', async () => {
    for (const [name, bytes] of Object.entries(await goodJpegs())) {
      const { source, pixels } = await libvips(bytes);
      const wasm = await decodeJpegRgb(bytes, source.width, source.height);
      expect(wasm, `${name}: taken by the wasm decoder`).toBeInstanceOf(Buffer);
      expect(wasm!.length, name).toBe(source.width * source.height * 3);
      expect(wasm!.equals(pixels), `${name}: same pixels`).toBe(true);
      expect((await decodeRgb(bytes, { jpegDecoder: 'wasm' })).pixels.equals(pixels), name).toBe(true);
    }
  });

  it('declines what it warns about or fails on, and keeps working after a fatal error', async () => {
    const good = (await goodJpegs())['odd size, 4:2:0, q95']!;
    const truncated = good.subarray(0, Math.floor(good.length * 0.6));
    expect(await decodeJpegRgb(truncated, 301, 203)).toBeUndefined(); // libjpeg: premature end of file (a warning)
    expect(await decodeJpegRgb(good.subarray(0, 300), 301, 203)).toBeUndefined(); // fatal: exit() inside the wasm
    expect(await decodeJpegRgb(good, 300, 203)).toBeUndefined(); // not the size the header reader found
    const again = await decodeJpegRgb(good, 301, 203);
    expect(again!.equals((await libvips(good)).pixels)).toBe(true);
  });

  it('leaves bad and unusual JPEGs to libvips: the same pixels or the same error, one by one and all at once', async () => {
    const good = (await goodJpegs())['odd size, 4:2:0, q95']!;
    const corrupt = Buffer.from(good);
    for (let i = 900; i < 940; i++) corrupt[i] ^= 0x5a;
    const noEoi = good.subarray(0, good.length - 2);
    const zeroTail = Buffer.concat([good.subarray(0, Math.floor(good.length / 2)), Buffer.alloc(2000), Buffer.from([0xff, 0xd9])]);
    const cmyk = await sharp(photo).resize(120, 90).toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer();
    const cases: Record<string, Buffer> = {
      truncated: good.subarray(0, Math.floor(good.length * 0.6)),
      'header only': good.subarray(0, 300),
      'SOI then garbage': Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.from('definitely not entropy-coded data')]),
      'corrupt entropy data': corrupt,
      'no end marker': noEoi,
      'zeros then an end marker': zeroTail,
      'CMYK (4 components)': cmyk,
      good,
    };
    const expected: Record<string, { pixels?: string; error?: string }> = {};
    for (const [name, b] of Object.entries(cases)) {
      expected[name] = await outcome(libvips(b));
      expect(await outcome(decodeRgb(b, { jpegDecoder: 'wasm' })), name).toEqual(expected[name]);
    }
    // The cases do exercise both sides: some fail, some decode.
    expect(Object.values(expected).filter((o) => o.error).length).toBeGreaterThanOrEqual(2);
    expect(expected.good!.pixels).toBeDefined();
    const names = Object.keys(cases);
    const concurrent = await Promise.all(Array.from({ length: 40 }, (_, i) => outcome(decodeRgb(cases[names[i % names.length]!]!, { jpegDecoder: 'wasm' }))));
    concurrent.forEach((o, i) => expect(o, names[i % names.length]).toEqual(expected[names[i % names.length]!]));
  });

  it('feeds the enlarging (PIL) resize the same pixels', async () => {
    const small = await sharp(photo).resize(40, 30, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
    const a = await decodeResized(small, spec, { jpegDecoder: 'wasm' });
    const b = await decodeResized(small, spec, { jpegDecoder: 'libvips' });
    expect(a.pixels.length).toBe(64 * 64 * 3);
    expect(a.pixels.equals(b.pixels)).toBe(true);
  });
});

describe('decodeForFrame', () => {
  it('gives frames of the frame size full size and resizes the others, as decodeRgb and decodeResized do', async () => {
    const frame = await sharp(photo).resize(96, 96, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
    const other = await sharp(photo).resize(120, 150, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
    for (const jpegDecoder of ['wasm', 'libvips'] as const) {
      const f = await decodeForFrame(frame, spec, { width: 96, height: 96 }, { jpegDecoder });
      expect(f.resized).toBe(false);
      expect(f.pixels.equals((await decodeRgb(frame)).pixels)).toBe(true);
      const o = await decodeForFrame(other, spec, { width: 96, height: 96 }, { jpegDecoder });
      expect(o.resized).toBe(true);
      expect(o.source).toMatchObject({ width: 120, height: 150 });
      expect(o.pixels.equals((await decodeResized(other, spec)).pixels)).toBe(true);
    }
    await expect(decodeForFrame(Buffer.from('not an image'), spec, { width: 96, height: 96 })).rejects.toMatchObject({ kind: 'decode_error' });
  });
});
