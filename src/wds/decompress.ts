/**
 * A shard's stored bytes to tar bytes. Compression is recognised from the first bytes, never from the name
 * (`.tar` files that are gzipped and `.tgz` files that are not both exist in the wild).
 */
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { MimicError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return 'bzip2';
  if (head.length >= 6 && head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) return 'xz';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

export interface DecodeState {
  sourceBytes: number;
  gzip: boolean;
}

/**
 * The tar bytes of a stored shard, chunk by chunk. Counts the stored bytes in `state.sourceBytes` (so that a
 * gzip error can say where it happened). bzip2, xz and zstd are recognised only to say how to read them.
 */
export async function* tarChunks(source: Readable, state: DecodeState, url: string): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let headBytes = 0;
  while (headBytes < 6) {
    const r = await it.next();
    if (r.done) break;
    head.push(r.value);
    headBytes += r.value.length;
  }
  state.sourceBytes += headBytes;
  const first = head.length === 1 ? head[0] : Buffer.concat(head);
  const kind = sniffCompression(first);
  if (kind !== 'none' && kind !== 'gzip') {
    throw new MimicError('E_TAR', `${url} is compressed with ${kind}, which grad-mimic cannot decompress`, {
      file: url,
      hint: `decompress it first, or read it through a command, e.g. 'pipe:${kind === 'zstd' ? 'zstd -dc' : kind === 'xz' ? 'xz -dc' : 'bzip2 -dc'} FILE' with --allow-pipe`,
    });
  }
  async function* rest(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      state.sourceBytes += r.value.length;
      yield r.value;
    }
  }
  if (kind === 'none') {
    yield* rest();
    return;
  }
  state.gzip = true;
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  // pipeline passes a source error on to gunzip, so iterating gunzip throws it (or gunzip's own error).
  pipeline(Readable.from(rest(), { objectMode: false }), gunzip, () => {});
  try {
    yield* gunzip as AsyncIterable<Buffer>;
  } finally {
    gunzip.destroy();
  }
}

/** Whether an error comes from zlib (corrupt or truncated gzip data) rather than from the source. */
export function isZlibError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
