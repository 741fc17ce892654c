/**
 * External sort of fixed-width records (see radix.ts for the record layout) in bounded memory: records fill a
 * buffer of half the budget, which is radix-sorted (the other half is its scratch) and written to a temporary
 * run file when full; the runs are then merged k ways with a binary heap, in several rounds when there are more
 * runs than the merge fan-in, each run read through a small buffer. With everything fitting in one buffer no
 * file is written. Temporary files live in their own folder, removed by `close()`.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MimicError, errorMessage } from '../errors.js';
import { compareRecords, radixSortRecords } from './radix.js';
import { releaseTemp, trackTemp } from '../atomic-file.js';

export interface ExternalSortOptions {
  /** Words (uint32) per record. */
  stride: number;
  /** Leading words that form the key. */
  keyWords: number;
  /** Memory for the in-memory buffers, in bytes (records + scratch, plus the merge's read buffers). */
  memoryBytes: number;
  /** Folder for run files (default: the OS temp folder). */
  tmpDir?: string;
  /** Runs merged at once (default 64). */
  fanIn?: number;
}

export class ExternalSorter {
  readonly stride: number;
  readonly keyWords: number;
  private readonly memoryBytes: number;
  private readonly fanIn: number;
  private readonly tmpRoot: string;
  private buf: Uint32Array;
  private scratch: Uint32Array | null = null;
  private used = 0;
  private runs: { path: string; records: number }[] = [];
  private dir: string | null = null;
  private runSeq = 0;
  count = 0;

  constructor(opts: ExternalSortOptions) {
    if (!(opts.stride > 0 && opts.keyWords > 0 && opts.keyWords <= opts.stride)) throw new RangeError('bad record layout');
    this.stride = opts.stride;
    this.keyWords = opts.keyWords;
    this.memoryBytes = opts.memoryBytes;
    this.fanIn = Math.max(2, opts.fanIn ?? 64);
    this.tmpRoot = opts.tmpDir ?? tmpdir();
    // Half the budget for records, half for the radix scratch; at least one record. The buffer starts small
    // and doubles up to that size, so a small sort costs little memory.
    this.capRecords = Math.max(1, Math.floor(opts.memoryBytes / 2 / (4 * opts.stride)));
    this.buf = new Uint32Array(Math.min(this.capRecords, 1 << 16) * opts.stride);
  }

  private readonly capRecords: number;

  /** Records that fit in memory at once. */
  get bufferRecords(): number {
    return this.capRecords;
  }

  /** Temporary run files written so far (for tests and the summary). */
  get runFiles(): number {
    return this.runSeq;
  }

  /** Append one record (its first `stride` words from `words` at `offset`). */
  push(words: Uint32Array, offset = 0): void {
    if (this.used === this.buf.length) this.makeRoom();
    const s = this.stride;
    const buf = this.buf;
    const at = this.used;
    for (let k = 0; k < s; k++) buf[at + k] = words[offset + k];
    this.used = at + s;
    this.count++;
  }

  private tempDir(): string {
    if (this.dir === null) {
      try {
        this.dir = mkdtempSync(join(this.tmpRoot, 'mimic-sort-'));
        trackTemp(this.dir);
      } catch (e) {
        throw new MimicError('E_IO', `cannot create a temporary folder in ${this.tmpRoot}: ${errorMessage(e)}`, {
          file: this.tmpRoot,
          hint: 'set --tmp-dir (or TMPDIR) to a writable folder with space for the sort',
        });
      }
    }
    return this.dir;
  }

  private sortBuffer(): void {
    const n = this.used / this.stride;
    if (n >= 2 && (this.scratch === null || this.scratch.length < this.used)) this.scratch = new Uint32Array(this.buf.length);
    radixSortRecords(this.buf, n, this.stride, this.keyWords, this.scratch ?? undefined);
  }

  private makeRoom(): void {
    const records = this.buf.length / this.stride;
    if (records < this.capRecords) {
      const grown = new Uint32Array(Math.min(this.capRecords, records * 2) * this.stride);
      grown.set(this.buf);
      this.buf = grown;
    } else {
      this.spill();
    }
  }

  private spill(): void {
    if (this.used === 0) return;
    this.sortBuffer();
    const path = join(this.tempDir(), `run-${this.runSeq++}.bin`);
    writeWords(path, this.buf.subarray(0, this.used));
    this.runs.push({ path, records: this.used / this.stride });
    this.used = 0;
  }

  /**
   * The records in key order, as chunks (each a Uint32Array of whole records, valid until the next chunk).
   * Call once, after the last push.
   */
  *sorted(): Generator<Uint32Array> {
    if (this.runs.length === 0) {
      this.sortBuffer();
      const all = this.buf.subarray(0, this.used);
      const chunk = this.stride * 8192;
      for (let p = 0; p < all.length; p += chunk) yield all.subarray(p, Math.min(all.length, p + chunk));
      return;
    }
    this.spill();
    this.buf = new Uint32Array(0); // the merge uses its own small buffers
    this.scratch = null;
    while (this.runs.length > this.fanIn) {
      const next: { path: string; records: number }[] = [];
      for (let g = 0; g < this.runs.length; g += this.fanIn) {
        const group = this.runs.slice(g, g + this.fanIn);
        if (group.length === 1) {
          next.push(group[0]);
          continue;
        }
        const path = join(this.tempDir(), `run-${this.runSeq++}.bin`);
        const out = new RunWriter(path, this.outBufferWords());
        for (const chunk of this.merge(group)) out.write(chunk);
        out.close();
        next.push({ path, records: group.reduce((s, r) => s + r.records, 0) });
        for (const r of group) rmSync(r.path, { force: true });
      }
      this.runs = next;
    }
    yield* this.merge(this.runs);
  }

  private readBufferWords(k: number): number {
    // The merge's read buffers share the budget; never below one record per run.
    const perRun = Math.floor(this.memoryBytes / 4 / (k + 1) / this.stride) * this.stride;
    return Math.max(this.stride, Math.min(perRun, 1 << 18));
  }

  private outBufferWords(): number {
    return this.readBufferWords(this.fanIn);
  }

  private *merge(runs: { path: string; records: number }[]): Generator<Uint32Array> {
    const s = this.stride;
    const K = this.keyWords;
    const readers = runs.map((r) => new RunReader(r.path, r.records, s, this.readBufferWords(runs.length)));
    try {
      // Binary heap of reader indices ordered by their current record.
      const heap: number[] = [];
      const less = (a: number, b: number) => {
        const ra = readers[a];
        const rb = readers[b];
        const c = compareRecords(ra.buf, ra.pos, rb.buf, rb.pos, s, K);
        return c < 0 || (c === 0 && a < b);
      };
      const siftDown = (i: number) => {
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && less(heap[l], heap[m])) m = l;
          if (r < heap.length && less(heap[r], heap[m])) m = r;
          if (m === i) return;
          [heap[i], heap[m]] = [heap[m], heap[i]];
          i = m;
        }
      };
      for (let i = 0; i < readers.length; i++) if (readers[i].fill()) heap.push(i);
      for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(i);
      const outWords = Math.max(s, Math.min(this.readBufferWords(runs.length), 1 << 16));
      const out = new Uint32Array(outWords - (outWords % s));
      let o = 0;
      while (heap.length > 0) {
        const top = heap[0];
        const r = readers[top];
        const p = r.pos * s;
        for (let k = 0; k < s; k++) out[o + k] = r.buf[p + k];
        o += s;
        if (o === out.length) {
          yield out;
          o = 0;
        }
        if (!r.advance()) {
          heap[0] = heap[heap.length - 1];
          heap.pop();
        }
        if (heap.length > 0) siftDown(0);
      }
      if (o > 0) yield out.subarray(0, o);
    } finally {
      for (const r of readers) r.close();
    }
  }

  /** Remove the temporary folder. */
  close(): void {
    if (this.dir !== null) {
      rmSync(this.dir, { recursive: true, force: true });
      releaseTemp(this.dir);
      this.dir = null;
    }
  }
}

function writeWords(path: string, words: Uint32Array): void {
  const w = new RunWriter(path, 0);
  w.write(words);
  w.close();
}

class RunWriter {
  private fd: number;
  constructor(private readonly path: string, _bufferWords: number) {
    try {
      this.fd = openSync(path, 'wx');
    } catch (e) {
      throw new MimicError('E_IO', `cannot write sort run ${path}: ${errorMessage(e)}`, { file: path, hint: 'check free space in the temporary folder' });
    }
  }

  write(words: Uint32Array): void {
    const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
    let off = 0;
    try {
      while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    } catch (e) {
      throw new MimicError('E_IO', `cannot write sort run ${this.path}: ${errorMessage(e)}`, { file: this.path, hint: 'check free space in the temporary folder' });
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Buffered reader of one sorted run; `pos` is the current record's index in `buf`. */
class RunReader {
  buf: Uint32Array;
  pos = 0;
  private have = 0;
  private fileRecord = 0;
  private fd: number;

  constructor(private readonly path: string, private readonly records: number, private readonly stride: number, bufferWords: number) {
    this.fd = openSync(path, 'r');
    this.buf = new Uint32Array(Math.max(stride, bufferWords - (bufferWords % stride)));
  }

  /** Load the next block; false at the end of the run. */
  fill(): boolean {
    const left = this.records - this.fileRecord;
    if (left <= 0) return false;
    const recs = Math.min(left, this.buf.length / this.stride);
    const bytes = new Uint8Array(this.buf.buffer, 0, recs * this.stride * 4);
    let off = 0;
    while (off < bytes.length) {
      const n = readSync(this.fd, bytes, off, bytes.length - off, this.fileRecord * this.stride * 4 + off);
      if (n === 0) throw new MimicError('E_IO', `sort run ${this.path} is shorter than written`, { file: this.path });
      off += n;
    }
    this.fileRecord += recs;
    this.have = recs;
    this.pos = 0;
    return true;
  }

  advance(): boolean {
    this.pos++;
    if (this.pos < this.have) return true;
    return this.fill();
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
}
