/**
 * Emoji images as a crawler would have stored them: a square RGB picture (the transparent background flattened
 * onto white, since CLIP preprocessing drops alpha and the packages disagree on what colour hides under it),
 * encoded as JPEG (img2dataset's default) or PNG. SVGs (OpenMoji) are rendered by libvips at the size asked for.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { MimicError, errorMessage } from '../errors.js';
import { ensureSharpConfigured } from '../image/sharp-setup.js';
import type { EmojiImageSource } from './catalog.js';

export type DemoImageFormat = 'jpg' | 'png';

export interface RenderOptions {
  size: number;
  format: DemoImageFormat;
  /** JPEG quality (img2dataset writes 95 by default; smaller files keep the demo light). */
  quality: number;
}

/** OpenMoji's SVGs are drawn on a 72×72 canvas, so rendering at density 72·size/72 dpi gives size pixels. */
const OPENMOJI_CANVAS = 72;

export async function renderEmoji(src: EmojiImageSource, opts: RenderOptions): Promise<Buffer> {
  ensureSharpConfigured();
  let bytes: Buffer;
  try {
    bytes = await readFile(src.file);
  } catch (e) {
    throw new MimicError('E_IO', `cannot read the emoji image ${src.file}: ${errorMessage(e)}`, {
      file: src.file,
      hint: 'reinstall the emoji packages (npm ci)',
    });
  }
  try {
    let img = src.format === 'svg'
      ? sharp(bytes, { density: (72 * opts.size) / OPENMOJI_CANVAS })
      : sharp(bytes);
    img = img.resize(opts.size, opts.size, { fit: 'contain', background: '#ffffff' }).flatten({ background: '#ffffff' });
    return opts.format === 'jpg'
      ? await img.jpeg({ quality: opts.quality }).toBuffer()
      : await img.png({ compressionLevel: 9 }).toBuffer();
  } catch (e) {
    throw new MimicError('E_IMAGE', `cannot render the emoji image ${src.file}: ${errorMessage(e)}`, {
      file: src.file,
      hint: 'reinstall the emoji packages (npm ci)',
    });
  }
}
