/**
 * The colour a GIF's first frame stores under its transparent index. libvips decodes transparent GIF pixels
 * as RGBA (0,0,0,0), while PIL's convert('RGB') of the palette image shows the palette entry of that index;
 * putting this colour back makes the two agree.
 */
export function gifTransparentColour(b: Uint8Array): [number, number, number] | undefined {
  if (b.length < 13 || b[0] !== 0x47 || b[1] !== 0x49 || b[2] !== 0x46) return undefined; // "GIF"
  const packed = b[10]!;
  let i = 13;
  let globalTable: Uint8Array | undefined;
  if (packed & 0x80) {
    const n = 3 * (1 << ((packed & 7) + 1));
    globalTable = b.subarray(i, i + n);
    i += n;
  }
  let transparent: number | undefined;
  while (i < b.length) {
    const block = b[i]!;
    if (block === 0x21) {
      const label = b[i + 1]!;
      i += 2;
      // Graphic control extension: size 4, then packed flags, delay (2 bytes), transparent index.
      if (label === 0xf9 && b[i] === 4) transparent = b[i + 1]! & 1 ? b[i + 4] : undefined;
      // Skip the sub-blocks: a length byte each, up to a zero length.
      while (i < b.length && b[i] !== 0) i += b[i]! + 1;
      i += 1;
    } else if (block === 0x2c) {
      if (transparent === undefined || i + 10 > b.length) return undefined;
      const local = b[i + 9]!;
      const table = local & 0x80 ? b.subarray(i + 10, i + 10 + 3 * (1 << ((local & 7) + 1))) : globalTable;
      if (!table || 3 * transparent + 2 >= table.length) return undefined;
      return [table[3 * transparent]!, table[3 * transparent + 1]!, table[3 * transparent + 2]!];
    } else {
      return undefined;
    }
  }
  return undefined;
}
