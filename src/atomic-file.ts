/**
 * Atomic output files: everything is written to a temporary name in the destination's folder and renamed into
 * place only when complete and fsynced, so a reader (or a resumed run) never sees a partial file. A failed or
 * abandoned write leaves at most a `*.tmp-<pid>-<random>` file, never a truncated final one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MimicError, errorMessage } from './errors.js';
import { maybeCrash } from './faults.js';

/** Temporary files and scratch folders of this thread, so that an interrupted process can remove them on its way out. */
const openTemps = new Set<string>();

/**
 * The temporary name a file is written under before the rename: same folder, so rename is atomic. The name is
 * tracked until `releaseTemp` (after the rename, or after removing it), for `removeOpenTemps`.
 */
export function tempPathFor(path: string): string {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  openTemps.add(temp);
  return temp;
}

/** The temporary file was renamed into place or removed: nothing to clean up for it any more. */
export function releaseTemp(temp: string): void {
  openTemps.delete(temp);
}

/** A scratch folder (external-sort runs and the like) to remove if the process is interrupted; `releaseTemp` it when done. */
export function trackTemp(path: string): void {
  openTemps.add(path);
}

/**
 * Remove every temporary file still being written and every tracked scratch folder; the destinations are
 * untouched. Synchronous: it runs while the process exits on a signal. Returns how many were removed.
 */
export function removeOpenTemps(): number {
  let n = 0;
  for (const p of openTemps) {
    try {
      rmSync(p, { recursive: true });
      n++;
    } catch {
      /* already renamed or gone */
    }
  }
  openTemps.clear();
  return n;
}

/**
 * A file written in pieces and published atomically. Writes are buffered and synchronous (outputs here are
 * produced by one loop that has nothing else to do while the bytes go out); `commit` fsyncs and renames.
 */
export class AtomicFile {
  readonly path: string;
  readonly tempPath: string;
  private fd: number | null;
  private buf: Buffer;
  private used = 0;
  private written = 0;

  private constructor(path: string, tempPath: string, fd: number, bufferBytes: number) {
    this.path = path;
    this.tempPath = tempPath;
    this.fd = fd;
    this.buf = Buffer.allocUnsafe(bufferBytes);
  }

  /** Create the parent folders and open a fresh temporary file next to `path`. */
  static open(path: string, opts: { bufferBytes?: number } = {}): AtomicFile {
    const tempPath = tempPathFor(path);
    try {
      mkdirSync(dirname(path), { recursive: true });
      const fd = openSync(tempPath, 'wx');
      return new AtomicFile(path, tempPath, fd, opts.bufferBytes ?? 1 << 20);
    } catch (e) {
      releaseTemp(tempPath);
      throw new MimicError('E_IO', `cannot create ${path}: ${errorMessage(e)}`, {
        file: path,
        hint: 'check that the folder is writable and the disk has space',
        cause: e,
      });
    }
  }

  /** Bytes handed to `write` so far (the file's final size once committed). */
  get size(): number {
    return this.written + this.used;
  }

  write(chunk: Uint8Array | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (this.fd === null) throw new Error(`write after close of ${this.path}`);
    if (bytes.byteLength >= this.buf.byteLength) {
      this.flush();
      this.writeAll(bytes);
      return;
    }
    if (this.used + bytes.byteLength > this.buf.byteLength) this.flush();
    this.buf.set(bytes, this.used);
    this.used += bytes.byteLength;
  }

  private flush(): void {
    if (this.used === 0) return;
    this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  private writeAll(bytes: Uint8Array): void {
    let off = 0;
    try {
      while (off < bytes.byteLength) {
        off += writeSync(this.fd!, bytes, off, bytes.byteLength - off);
      }
    } catch (e) {
      throw new MimicError('E_IO', `cannot write ${this.path}: ${errorMessage(e)}`, {
        file: this.path,
        hint: 'check free disk space',
        cause: e,
      });
    }
    this.written += bytes.byteLength;
  }

  /** Flush, fsync, close and rename into place. */
  commit(): void {
    if (this.fd === null) throw new Error(`commit after close of ${this.path}`);
    try {
      this.flush();
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
      maybeCrash('before-rename', this.path); // test hook (src/faults.ts), a no-op unless MIMIC_FAULT is set
      renameSync(this.tempPath, this.path);
      releaseTemp(this.tempPath);
      maybeCrash('after-rename', this.path);
    } catch (e) {
      this.abort();
      if (e instanceof MimicError) throw e;
      throw new MimicError('E_IO', `cannot finish ${this.path}: ${errorMessage(e)}`, { file: this.path, cause: e });
    }
  }

  /** Drop the temporary file; the destination is left as it was. Safe to call more than once. */
  abort(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already unusable: nothing more to release */
      }
      this.fd = null;
    }
    releaseTemp(this.tempPath);
    try {
      unlinkSync(this.tempPath);
    } catch {
      /* never created or already gone */
    }
  }
}

/** Write a whole file atomically (temporary name, fsync, rename), creating parent folders. */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const f = AtomicFile.open(path, { bufferBytes: 1 << 16 });
  try {
    f.write(data);
    f.commit();
  } catch (e) {
    f.abort();
    throw e;
  }
}

/** The same for code that must not block its thread (small outputs: sizes.json, stats, reports). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = tempPathFor(path);
  try {
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(temp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
    releaseTemp(temp);
  } catch (e) {
    await rm(temp, { force: true });
    releaseTemp(temp);
    throw new MimicError('E_IO', `cannot write ${path}: ${errorMessage(e)}`, {
      file: path,
      hint: 'check that the folder exists and is writable',
      cause: e,
    });
  }
}
