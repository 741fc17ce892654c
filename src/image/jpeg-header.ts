/**
 * Reads a baseline/progressive JPEG's frame header (SOF) in JavaScript. For the usual 8-bit grey or colour
 * JPEG this replaces a sharp metadata() call (a thread-pool round trip, ~7% of a 256-px image's
 * preprocessing); anything unusual returns undefined and goes through sharp's own header reader.
 */
export interface JpegFrame {
  width: number;
  height: number;
  components: number;
  precision: number;
  /** 0xC0 baseline, 0xC1 extended, 0xC2 progressive, ... */
  marker: number;
}

export function readJpegFrame(b: Uint8Array): JpegFrame | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1]!;
    // Fill bytes (0xFF padding) before a marker are allowed.
    if (marker === 0xff) {
      i += 1;
      continue;
    }
    // Standalone markers carry no length.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // image data before any frame header
    const len = (b[i + 2]! << 8) | b[i + 3]!;
    if (len < 2) return undefined;
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (i + 10 > b.length || len < 8) return undefined;
      const precision = b[i + 4]!;
      const height = (b[i + 5]! << 8) | b[i + 6]!;
      const width = (b[i + 7]! << 8) | b[i + 8]!;
      const components = b[i + 9]!;
      if (width === 0 || height === 0) return undefined;
      return { width, height, components, precision, marker };
    }
    i += 2 + len;
  }
  return undefined;
}
