/**
 * WebDataset shard writing with deterministic bytes: fixed headers (mtime 0, uid/gid 0, no user names, mode 0644),
 * members in the caller's order, names checked so that the shard reads back as exactly the samples written.
 * The shard is written under a temporary name in its folder and renamed into place by `close()`, so no reader
 * ever sees half a shard. Gzip (deterministic too: Node writes no name and mtime 0) when asked or when the name
 * ends in .gz / .tgz.
 */
import { closeSync, createWriteStream, fsyncSync, mkdirSync, openSync, renameSync, rmSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { releaseTemp, tempPathFor } from '../atomic-file.js';
import { createGzip, type Gzip } from 'node:zlib';
import tarStream from 'tar-stream';
import { MimicError, errorMessage } from '../errors.js';
import { classifyMember, isUnsafeMemberName } from './grouper.js';

export interface ShardWriterOptions {
  /** Gzip the shard; by default when the path ends in .gz or .tgz. */
  gzip?: boolean;
}

export type SampleFiles = Record<string, Buffer | Uint8Array | string>;

const MTIME = new Date(0);

export class ShardWriter {
  readonly path: string;
  /** Where the shard is written until `close()` renames it (same folder, so the rename is atomic). */
  readonly tempPath: string;
  private readonly pack: tarStream.Pack;
  private readonly file: WriteStream;
  private readonly gzip?: Gzip;
  private readonly done: Promise<void>;
  private failure: Error | null = null;
  private readonly keys = new Set<string>();
  private closed = false;
  private count = 0;

  constructor(path: string, opts: ShardWriterOptions = {}) {
    this.path = path;
    this.tempPath = tempPathFor(path);
    let fd: number;
    try {
      mkdirSync(dirname(path), { recursive: true });
      // Opened here, synchronously, so that an unwritable folder fails the constructor rather than a later write.
      fd = openSync(this.tempPath, 'wx');
    } catch (e) {
      throw ioError(path, e);
    }
    this.pack = tarStream.pack();
    this.file = createWriteStream(this.tempPath, { fd });
    const gz = opts.gzip ?? /\.(gz|tgz)$/i.test(path);
    const fail = (e: Error) => {
      this.failure ??= e;
    };
    this.file.on('error', fail);
    this.pack.on('error', fail);
    if (gz) {
      this.gzip = createGzip();
      this.gzip.on('error', fail);
      this.pack.pipe(this.gzip).pipe(this.file);
    } else {
      this.pack.pipe(this.file);
    }
    this.done = new Promise<void>((resolve) => {
      this.file.on('close', resolve);
      this.file.on('error', () => resolve());
    });
  }

  /** Samples added so far. */
  get samples(): number {
    return this.count;
  }

  /**
   * Add one sample: `files` maps each extension (`jpg`, `txt`, `seg.png`...) to its bytes, written in the
   * object's order. Throws E_SAMPLE for a name that would not read back as this sample.
   */
  async add(key: string, files: SampleFiles): Promise<void> {
    if (this.closed) throw new MimicError('E_IO', `the shard ${this.path} is already closed`, { file: this.path });
    this.checkKey(key);
    const exts = Object.keys(files);
    if (exts.length === 0) throw sampleError(this.path, key, 'a sample needs at least one file');
    const lower = new Set<string>();
    for (const ext of exts) {
      const name = `${key}.${ext}`;
      if (ext === '' || ext.includes('/') || ext.includes('\0')) {
        throw sampleError(this.path, key, `the extension "${ext}" is empty or contains "/" or NUL`);
      }
      if (lower.has(ext.toLowerCase())) {
        throw sampleError(this.path, key, `two files have the extension "${ext.toLowerCase()}" once lower-cased`);
      }
      lower.add(ext.toLowerCase());
      const c = classifyMember(name, true);
      if (c.kind !== 'member' || c.key !== key) {
        throw sampleError(this.path, key, `"${name}" would not read back as a file of sample "${key}"`);
      }
    }
    this.keys.add(key);
    for (const ext of exts) {
      const value = files[ext];
      const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
      await this.entry(`${key}.${ext}`, data);
    }
    this.count++;
  }

  /** Finish the tar, flush, and move the shard into place. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pack.finalize();
    await this.done;
    if (this.failure) {
      this.removeTemp();
      throw ioError(this.path, this.failure);
    }
    try {
      // Durable before visible: a crash after the rename must not leave a shard with missing blocks.
      const fd = openSync(this.tempPath, 'r+');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(this.tempPath, this.path);
      releaseTemp(this.tempPath);
    } catch (e) {
      this.removeTemp();
      throw ioError(this.path, e);
    }
  }

  /** Give up: remove the temporary file; the destination is left as it was. */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pack.destroy();
    this.file.destroy();
    await this.done;
    this.removeTemp();
  }

  private checkKey(key: string): void {
    if (key === '' || key.includes('\0')) throw sampleError(this.path, key, 'a key must be non-empty and without NUL');
    if (isUnsafeMemberName(key)) throw sampleError(this.path, key, 'a key must not be absolute or contain ".."');
    const base = key.slice(key.lastIndexOf('/') + 1);
    if (base === '' || base.includes('.')) {
      throw sampleError(this.path, key, 'the last part of a key must be non-empty and contain no "." (it ends the key)');
    }
    if (this.keys.has(key)) {
      throw sampleError(this.path, key, 'this key is already in the shard (readers would see two samples with one key)');
    }
  }

  private entry(name: string, data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pack.entry(
        { name, size: data.byteLength, mtime: MTIME, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', type: 'file' },
        Buffer.from(data.buffer, data.byteOffset, data.byteLength),
        (err) => (err ? reject(ioError(this.path, err)) : resolve()),
      );
    });
  }

  private removeTemp(): void {
    rmSync(this.tempPath, { force: true });
    releaseTemp(this.tempPath);
  }
}

function sampleError(path: string, key: string, why: string): MimicError {
  return new MimicError('E_SAMPLE', `cannot write sample "${key}" to ${path}: ${why}`, { file: path });
}

function ioError(path: string, e: unknown): MimicError {
  return new MimicError('E_IO', `cannot write the shard ${path}: ${errorMessage(e)}`, {
    file: path,
    hint: 'check that the folder is writable and the disk has space',
    cause: e,
  });
}
