import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { MimicError } from '../../src/errors.js';
import { CLIP_MEAN, CLIP_STD, ImageDecodeError, decodeResized, imageErrorKind, preprocessInto, type ImageSpec } from '../../src/image/index.js';
import { NEMO_TAR, jpegClaiming, pngClaiming, tarMember } from './fixtures.js';

const spec: ImageSpec = { size: 224, mean: CLIP_MEAN, std: CLIP_STD, resize: 'shortest' };

async function failure(p: Promise<unknown>): Promise<ImageDecodeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(MimicError);
    expect((e as MimicError).code).toBe('E_IMAGE');
    return e as ImageDecodeError;
  }
  throw new Error('expected a failure');
}

describe('images that must be refused', () => {
  it('refuses a PNG bomb from its header, before decoding', async () => {
    const bomb = pngClaiming(100_000, 100_000);
    expect(bomb.length).toBeLessThan(100);
    const e = await failure(decodeResized(bomb, spec, { file: 'shard-0.tar:bomb.png' }));
    expect(imageErrorKind(e)).toBe('image_too_large');
    expect(e.message).toContain('100000×100000');
    expect(e.file).toBe('shard-0.tar:bomb.png');
    expect(e.hint).toMatch(/limitInputPixels/);
  });

  it('refuses a JPEG bomb on the fast header path', async () => {
    const e = await failure(decodeResized(await jpegClaiming(60_000, 60_000), spec));
    expect(e.kind).toBe('image_too_large');
  });

  it('applies a configured limit, and no limit when it is 0', async () => {
    const photo = tarMember(NEMO_TAR, '0.jpg'); // 639×800 = 511,200 pixels
    const png = await sharp(photo).png().toBuffer();
    for (const bytes of [photo, png]) {
      const e = await failure(decodeResized(bytes, spec, { limitInputPixels: 500_000 }));
      expect(e.kind).toBe('image_too_large');
      await expect(decodeResized(bytes, spec, { limitInputPixels: 511_200 })).resolves.toBeDefined();
      await expect(decodeResized(bytes, spec, { limitInputPixels: 0 })).resolves.toBeDefined();
    }
  });

  it('fails a truncated JPEG instead of padding it with grey', async () => {
    const photo = tarMember(NEMO_TAR, '0.jpg');
    const e = await failure(decodeResized(photo.subarray(0, photo.length >> 1), spec, { file: 'x.jpg' }));
    expect(e.kind).toBe('decode_error');
    expect(e.message).toMatch(/premature end|truncated/i);
    // With failOn: 'none' the caller explicitly accepts partial images.
    await expect(decodeResized(photo.subarray(0, photo.length >> 1), spec, { failOn: 'none' })).resolves.toBeDefined();
  });

  it('describes a failure by the bytes alone, the same under concurrency (libvips shares one error buffer between threads)', async () => {
    const photo = tarMember(NEMO_TAR, '0.jpg');
    const cut = photo.subarray(0, 4000);
    const garbage = Buffer.from('not a jpeg at all');
    // A JPEG start, nonsense, and the end marker: complete but unreadable.
    const corrupt = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00]), Buffer.alloc(300, 0x5a), Buffer.from([0xff, 0xd9])]);
    const seen = { cut: new Set<string>(), garbage: new Set<string>(), corrupt: new Set<string>() };
    for (let round = 0; round < 40; round++) {
      await Promise.all((['cut', 'garbage', 'corrupt', 'cut'] as const).map(async (k) => {
        const bytes = k === 'cut' ? cut : k === 'garbage' ? garbage : corrupt;
        seen[k].add((await failure(decodeResized(bytes, spec))).message);
      }));
    }
    expect([...seen.cut]).toEqual(['image could not be decoded: jpeg data is truncated (4000 bytes)']);
    expect([...seen.garbage]).toEqual(['image could not be decoded: not an image in a known format (17 bytes, starting 6e 6f 74 20)']);
    expect([...seen.corrupt]).toEqual([`image could not be decoded: jpeg data is corrupt (${corrupt.length} bytes)`]);
  });

  it('fails a truncated PNG', async () => {
    const png = await sharp(tarMember(NEMO_TAR, '0.jpg')).png().toBuffer();
    const e = await failure(decodeResized(png.subarray(0, png.length >> 1), spec));
    expect(e.kind).toBe('decode_error');
  });

  it('fails garbage, empty input and HTML saved as .jpg', async () => {
    for (const bytes of [Buffer.from('not an image at all'), Buffer.alloc(0), Buffer.from('<html><body>404</body></html>')]) {
      const e = await failure(preprocessInto(bytes, spec, new Float32Array(3 * 224 * 224), 0));
      expect(e.kind).toBe('decode_error');
    }
  });

  it('does not render SVG (not an image format PIL reads)', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>');
    const e = await failure(decodeResized(svg, spec));
    expect(e.kind).toBe('decode_error');
    expect(e.message).toContain('svg');
  });

  it('leaves the batch row untouched when decoding fails', async () => {
    const t = new Float32Array(3 * 224 * 224).fill(5);
    await failure(preprocessInto(Buffer.from('garbage'), spec, t, 0));
    expect(t.every((v) => v === 5)).toBe(true);
    expect(imageErrorKind(new Error('x'))).toBeUndefined();
  });
});

describe('image spec validation', () => {
  it('names the bad field of a bundle spec', async () => {
    const { checkImageSpec } = await import('../../src/image/index.js');
    expect(checkImageSpec(spec)).toBe(spec);
    expect(() => checkImageSpec({ ...spec, size: 0 }, 'model.json')).toThrow(/size 0/);
    expect(() => checkImageSpec({ ...spec, std: [1, 0, 1] })).toThrow(/std/);
    expect(() => checkImageSpec({ ...spec, mean: [1, 2] as unknown as [number, number, number] })).toThrow(/mean/);
    expect(() => checkImageSpec({ ...spec, resize: 'crop' as 'squash' })).toThrow(/resize/);
  });
});
