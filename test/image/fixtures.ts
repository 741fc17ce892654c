import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';

export const REPO = new URL('../..', import.meta.url).pathname;
export const NEMO_TAR = join(REPO, '../shared/fixtures/wds/nemo-00000.tar');
export const EMOJI_DIR = join(REPO, 'node_modules/emoji-datasource-google/img/google/64');

/** One member of an uncompressed ustar file (the fixture shard holds three small members). */
export function tarMember(tarPath: string, name: string): Buffer {
  const buf = readFileSync(tarPath);
  for (let off = 0; off + 512 <= buf.length; ) {
    const n = buf.toString('latin1', off, off + 100).replace(/\0.*$/s, '');
    if (!n) break;
    const len = parseInt(buf.toString('latin1', off + 124, off + 136).replace(/\0.*$/s, '').trim(), 8);
    if (n === name) return buf.subarray(off + 512, off + 512 + len);
    off += 512 + Math.ceil(len / 512) * 512;
  }
  throw new Error(`${name} not in ${tarPath}`);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface RefResult {
  index: number;
  mode?: string;
  error?: string;
  data?: Buffer;
}

/** Runs scripts/preprocess_ref.py (PIL + torch) on files; returns per-file output bytes. */
export function pilReference(files: string[], args: string[], outDir: string): RefResult[] {
  const stdout = execFileSync('/usr/bin/python3', [join(REPO, 'scripts/preprocess_ref.py'), ...args, '--out', outDir, ...files], {
    encoding: 'utf8',
  });
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as RefResult)
    .map((r) => (r.error ? r : { ...r, data: readFileSync(join(outDir, `${r.index}.bin`)) }));
}

function crc32be(parts: Buffer[]): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(zlib.crc32(Buffer.concat(parts)) >>> 0);
  return b;
}

/** A valid PNG whose header claims width×height but whose data is one empty zlib stream: a bomb's shape. */
export function pngClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const t = Buffer.from(type, 'latin1');
    return Buffer.concat([len, t, data, crc32be([t, data])]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(0))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A JPEG whose frame header claims width×height (SOF0 patched into a real small JPEG). */
export async function jpegClaiming(width: number, height: number): Promise<Buffer> {
  const jpg = Buffer.from(await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } }).jpeg().toBuffer());
  for (let i = 2; i < jpg.length; ) {
    const marker = jpg[i + 1]!;
    const len = jpg.readUInt16BE(i + 2);
    if (marker === 0xc0 || marker === 0xc2) {
      jpg.writeUInt16BE(height, i + 5);
      jpg.writeUInt16BE(width, i + 7);
      return jpg;
    }
    i += 2 + len;
  }
  throw new Error('no SOF in generated JPEG');
}

export function write(dir: string, name: string, data: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}
