/**
 * Broken shards: every complete sample is yielded, the one being read when the shard broke is marked
 * `truncated` (it may lack members), and then an E_TAR error names the shard and the byte offset.
 *
 * Python's webdataset (tarfile underneath) was run on the same files with test/wds/oracle/webdataset_oracle.py.
 * It raises for a cut inside member data, a cut gzip stream, noise and an empty file (and, with its default
 * handler, loses the sample it was building), but it silently ends the shard — no error — at a cut inside a
 * header, at a damaged header (also when gzip damage produces one), and when the end-of-archive blocks are
 * missing. A silently shortened shard is what this project must never produce, so those are errors here; the
 * samples yielded before the error are the same. It also fails on concatenated gzip members, which are read
 * here (as `gzip -d` reads them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import type { Sample } from '../../src/wds/types.js';
import { buildTar, makeSamples, readAll, sampleEntries, tempDir, writeBytes } from '../helpers/shards.js';

const t = tempDir();
afterAll(t.cleanup);

let tar: Buffer;
let clean: Sample[];
const N = 6;

beforeAll(async () => {
  tar = await buildTar(sampleEntries(makeSamples(N, { imageBytes: [700, 1500] })));
  clean = (await readAll(writeBytes(t.path('clean.tar'), tar))).samples;
  expect(clean).toHaveLength(N);
});

function expectPrefix(samples: Sample[], complete: number, truncatedLast: boolean) {
  expect(samples.map((s) => s.key)).toEqual(clean.slice(0, samples.length).map((s) => s.key));
  expect(samples.map((s) => s.row)).toEqual(samples.map((_, i) => i));
  for (const [i, s] of samples.entries()) {
    if (truncatedLast && i === samples.length - 1) {
      expect(s.problem?.status).toBe('truncated');
    } else {
      expect(s.problem).toBeUndefined();
      expect(s.files).toEqual(clean[i].files);
    }
  }
  expect(samples.length).toBe(complete + (truncatedLast ? 1 : 0));
}

describe('a truncated tar', () => {
  it('cut inside a header: the samples before, then E_TAR naming the offset', async () => {
    const headerAt = clean[3].offset;
    const cut = headerAt + 100;
    const path = writeBytes(t.path('cut-header.tar'), tar.subarray(0, cut));
    const r = await readAll(path);
    expectPrefix(r.samples, 2, true); // sample 2 is complete but nothing says it ended: marked truncated
    expect(r.error).toMatchObject({ code: 'E_TAR', file: path });
    expect(r.error!.message).toContain(`truncated at byte ${cut}`);
    expect(r.error!.message).toContain(`inside a tar header (the last complete member ends at byte ${headerAt})`);
    expect(r.error!.hint).toBeTruthy();
  });

  it('cut inside member data: names the member, its header offset and the bytes present', async () => {
    const jpg = clean[3].members[0];
    const cut = jpg.offset + 512 + 300;
    const r = await readAll(writeBytes(t.path('cut-data.tar'), tar.subarray(0, cut)));
    expectPrefix(r.samples, 3, false);
    expect(r.samples[2].problem?.status).toBeUndefined();
    expect(r.error).toMatchObject({ code: 'E_TAR' });
    expect(r.error!.message).toContain(`inside the data of member "${jpg.name}" (header at byte ${jpg.offset}, 300 of ${jpg.size} bytes present)`);
  });

  it('cut at a block boundary between members: the missing end-of-archive blocks give it away', async () => {
    const txt = clean[3].members[1];
    const cut = txt.offset + 512 + Math.ceil(txt.size / 512) * 512;
    const r = await readAll(writeBytes(t.path('cut-boundary.tar'), tar.subarray(0, cut)));
    expectPrefix(r.samples, 3, true);
    expect([...r.samples[3].files.keys()]).toEqual(['jpg', 'txt']); // its json was cut off
    expect(r.error).toMatchObject({ code: 'E_TAR' });
    expect(r.error!.message).toContain(`ends at byte ${cut}, right after member "${txt.name}"`);
  });

  it('cut right after the last member: every sample, the last marked, and an error', async () => {
    const last = clean[N - 1].members[2];
    const cut = last.offset + 512 + Math.ceil(last.size / 512) * 512;
    const r = await readAll(writeBytes(t.path('cut-end.tar'), tar.subarray(0, cut)));
    expectPrefix(r.samples, N - 1, true);
    expect(r.error).toMatchObject({ code: 'E_TAR' });
  });

  it('a cut inside the end-of-archive blocks loses nothing and is fine', async () => {
    const last = clean[N - 1].members[2];
    const cut = last.offset + 512 + Math.ceil(last.size / 512) * 512 + 512;
    const r = await readAll(writeBytes(t.path('cut-eof.tar'), tar.subarray(0, cut)));
    expect(r.error).toBeUndefined();
    expect(r.samples).toHaveLength(N);
  });
});

describe('garbage', () => {
  it('a damaged header mid-shard: samples before it, then E_TAR at that header', async () => {
    const bad = Buffer.from(tar);
    const at = clean[3].offset;
    bad.fill(0x41, at, at + 512);
    const r = await readAll(writeBytes(t.path('garbage-mid.tar'), bad));
    expectPrefix(r.samples, 2, true);
    expect(r.error).toMatchObject({ code: 'E_TAR' });
    expect(r.error!.message).toContain(`invalid tar header at or after byte ${at}`);
  });

  it('bytes that are not a tar at all', async () => {
    const r = await readAll(writeBytes(t.path('noise.tar'), Buffer.from('this is not a tar file\n'.repeat(100))));
    expect(r.samples).toHaveLength(0);
    expect(r.error).toMatchObject({ code: 'E_TAR', message: expect.stringContaining('is not a tar file') });
  });

  it('an empty file is an error, a tar of only end blocks is an empty shard', async () => {
    const empty = await readAll(writeBytes(t.path('empty.tar'), Buffer.alloc(0)));
    expect(empty.error).toMatchObject({ code: 'E_TAR', message: expect.stringContaining('is empty') });
    const zeros = await readAll(writeBytes(t.path('zeros.tar'), Buffer.alloc(10240)));
    expect(zeros.error).toBeUndefined();
    expect(zeros.samples).toHaveLength(0);
  });
});

describe('compression', () => {
  it('gzip cut short: the samples before, then E_TAR naming the compressed offset', async () => {
    const gz = gzipSync(tar);
    const cut = Math.floor(gz.length * 0.6);
    const r = await readAll(writeBytes(t.path('cut.tar.gz'), gz.subarray(0, cut)));
    expect(r.samples.length).toBeGreaterThan(0);
    expect(r.samples.length).toBeLessThan(N);
    // Where the cut falls inside the tar depends on the compression: the last sample is marked unless the cut
    // fell inside a member of the next one.
    const marked = r.samples[r.samples.length - 1].problem !== undefined;
    expectPrefix(r.samples, r.samples.length - (marked ? 1 : 0), marked);
    expect(r.error).toMatchObject({ code: 'E_TAR' });
    expect(r.error!.message).toMatch(/gzip data is corrupt or cut short at tar byte \d+ \(compressed byte \d+\)/);
  });

  it('gzip with damaged bytes: E_TAR', async () => {
    const gz = gzipSync(tar);
    const bad = Buffer.from(gz);
    for (let i = Math.floor(gz.length / 2); i < Math.floor(gz.length / 2) + 64; i++) bad[i] ^= 0x5a;
    const r = await readAll(writeBytes(t.path('bad.tgz'), bad));
    expect(r.error).toMatchObject({ code: 'E_TAR' });
    expect(r.samples.length).toBeLessThan(N);
  });

  it('is detected from the bytes: a gzipped ".tar" and a plain ".tgz" both read', async () => {
    const a = await readAll(writeBytes(t.path('really-gzipped.tar'), gzipSync(tar)));
    const b = await readAll(writeBytes(t.path('really-plain.tgz'), tar));
    expect(a.stats!.gzip).toBe(true);
    expect(b.stats!.gzip).toBe(false);
    expect(a.samples.map((s) => s.files)).toEqual(clean.map((s) => s.files));
    expect(b.samples.map((s) => s.files)).toEqual(clean.map((s) => s.files));
  });

  it('reads concatenated gzip members as one stream', async () => {
    const half = 512 * 20;
    const two = Buffer.concat([gzipSync(tar.subarray(0, half)), gzipSync(tar.subarray(half))]);
    const r = await readAll(writeBytes(t.path('multi.tar.gz'), two));
    expect(r.error).toBeUndefined();
    expect(r.samples.map((s) => s.files)).toEqual(clean.map((s) => s.files));
  });

  it('names the tool for xz, zstd and bzip2 shards it cannot decompress', async () => {
    for (const [name, magic, tool] of [
      ['x.tar.xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz -dc'],
      ['x.tar.zst', [0x28, 0xb5, 0x2f, 0xfd, 0, 0], 'zstd -dc'],
      ['x.tar.bz2', [0x42, 0x5a, 0x68, 0x39, 0, 0], 'bzip2 -dc'],
    ] as const) {
      const r = await readAll(writeBytes(t.path(name), Buffer.concat([Buffer.from(magic), Buffer.alloc(100)])));
      expect(r.error).toMatchObject({ code: 'E_TAR' });
      expect(r.error!.hint).toContain(`pipe:${tool}`);
    }
  });
});

describe('a missing shard', () => {
  it('fails at open with E_SOURCE naming it', async () => {
    const r = await readAll(t.path('nope.tar'));
    expect(r.error).toMatchObject({ code: 'E_SOURCE', file: t.path('nope.tar') });
    expect(r.error!.message).toContain('no such shard');
  });

  it('a folder is not a shard', async () => {
    const r = await readAll(t.dir);
    expect(r.error).toMatchObject({ code: 'E_SOURCE', message: expect.stringContaining('is not a file') });
  });
});
