import sharp from 'sharp';
import { DEFAULTS } from '../defaults.js';

/** Process-wide libvips settings; sharp keeps them globally, so they are set once, here. */
export interface SharpSetup {
  /** libvips threads per image (sharp.concurrency). */
  concurrency?: number;
  /**
   * libvips' operation cache. Off by default: a pool never decodes the same bytes twice, so caching only
   * holds memory.
   */
  cache?: boolean;
}

let configured = false;

export function configureSharp(setup: SharpSetup = {}): void {
  sharp.concurrency(setup.concurrency ?? DEFAULTS.image.concurrency);
  sharp.cache(setup.cache ?? false);
  configured = true;
}

/** Applies the defaults before the first decode unless the program configured sharp itself. */
export function ensureSharpConfigured(): void {
  if (!configured) configureSharp();
}

export function libvipsVersion(): string {
  return sharp.versions.vips;
}
