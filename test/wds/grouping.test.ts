/**
 * Samples must be exactly what Python's webdataset yields. Every expected value here was established by running
 * webdataset itself (github.com/webdataset/webdataset at commit e0953f9, `tariterators.tarfile_samples`) through
 * test/wds/oracle/webdataset_oracle.py on the same bytes, and written down. When WEBDATASET_SRC points at a
 * webdataset source tree, the oracle is also run live and compared (an extra check; the written values are
 * always checked).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basePlusExt, classifyMember } from '../../src/wds/grouper.js';
import type { Sample } from '../../src/wds/types.js';
import { buildTar, readAll, tempDir, writeBytes } from '../helpers/shards.js';
import { EDGE_ENTRIES } from './edge-cases.js';

const FIXTURES = new URL('../../../shared/fixtures/wds/', import.meta.url).pathname;

/** The oracle's digest: key, then each extension (sorted) with its length and bytes. */
function sampleDigest(samples: Sample[]): string {
  const h = createHash('sha256');
  for (const s of samples) {
    h.update(s.key + '\n');
    for (const ext of [...s.files.keys()].sort()) {
      const b = s.files.get(ext)!;
      h.update(`${ext}\n${b.length}\n`);
      h.update(b);
    }
  }
  return h.digest('hex');
}

interface OracleShard {
  samples: Array<{ key: string; exts: string[]; sizes: Record<string, number> }>;
  digest: string;
  error: string | null;
}

function liveOracle(paths: string[], tolerant: boolean): OracleShard[] | undefined {
  const src = process.env.WEBDATASET_SRC;
  if (!src || !existsSync(src)) return undefined;
  const script = new URL('./oracle/webdataset_oracle.py', import.meta.url).pathname;
  const out = execFileSync('/usr/bin/python3', [script, ...(tolerant ? ['--continue'] : []), ...paths], {
    env: { ...process.env, WEBDATASET_SRC: src },
    encoding: 'utf8',
  });
  return JSON.parse(out) as OracleShard[];
}

function summary(samples: Sample[]) {
  return samples.map((s) => ({ key: s.key, exts: [...s.files.keys()].sort() }));
}

describe('base_plus_ext', () => {
  // [name, key, extension] as webdataset's base_plus_ext returns them (null: the member is skipped).
  const table: Array<[string, string | null, string | null]> = [
    ['a/b.seg.png', 'a/b', 'seg.png'],
    ['x.JPG', 'x', 'JPG'],
    ['noext', null, null],
    ['dir/.hidden.txt', 'dir/', 'hidden.txt'],
    ['.hidden', null, null],
    ['a.b/c', null, null],
    ['a.b/c.d', 'a.b/c', 'd'],
    ['a/b/c.tar.gz', 'a/b/c', 'tar.gz'],
    ['005.', '005', ''],
    ['../e.txt', '../e', 'txt'],
    ['/abs/f.txt', '/abs/f', 'txt'],
    ['./g.txt', './g', 'txt'],
    ['a..b', 'a', '.b'],
    ['.', null, null],
    ['a/', null, null],
    ['a/b.', 'a/b', ''],
    ['multi.dot.name.json', 'multi', 'dot.name.json'],
    ['__key__.txt', '__key__', 'txt'],
    ['sp ace.txt', 'sp ace', 'txt'],
    ['n\nl.txt', 'n\nl', 'txt'],
  ];
  it.each(table)('%j', (name, key, ext) => {
    const r = basePlusExt(name);
    expect(r ? [r.key, r.ext] : [null, null]).toEqual([key, ext]);
  });

  // Whether tar_file_iterator skips a regular member as metadata (its two tests, as webdataset applies them).
  it.each([
    ['__meta__', true],
    ['__a__/b.txt', true],
    ['__a__.txt', false],
    ['x/__m__', false],
    ['___', true],
    ['__a__b__', true],
    ['__x__\n', true],
  ])('metadata %j skipped: %s', (name, skipped) => {
    expect(classifyMember(name, true).kind === 'meta').toBe(skipped);
  });

  it('skips every non-regular entry whatever its name', () => {
    expect(classifyMember('a/000.jpg', false)).toEqual({ kind: 'nonregular' });
    expect(classifyMember('a/000.JPG', true)).toEqual({ kind: 'member', key: 'a/000', ext: 'jpg' });
  });
});

describe('the shared real fixtures', () => {
  // Established with the oracle (default handler): sample counts, keys, extensions, and the digest of all bytes.
  const expected: Record<string, { count: number; keys: string[]; exts: string[]; digest: string; skippedNonRegular: number }> = {
    'sample.tgz': {
      count: 90,
      keys: Array.from({ length: 90 }, (_, i) => String(10 + i)),
      exts: ['cls', 'png'],
      digest: 'bcfec035edc8eb36ab77178f73c83bea96a73abda072adccaca5aea9ca11063d',
      skippedNonRegular: 0,
    },
    'compressed.tar': {
      count: 3,
      keys: ['compressed/0001', 'compressed/0002', 'compressed/0003'],
      exts: ['txt.gz'],
      digest: 'f04796950a16145cb602ca35002f267e28e601f326aa4095080262153221d0b8',
      skippedNonRegular: 1, // the "compressed" folder entry
    },
    'nemo-00000.tar': {
      count: 1,
      keys: ['0'],
      exts: ['jpg', 'json', 'txt'],
      digest: '9cb63819723d409113e6c73ccb3ea81f2938047942fd6d417e1e4afee299a92e',
      skippedNonRegular: 0,
    },
  };

  it.each(Object.keys(expected))('%s yields what webdataset yields', async (name) => {
    const e = expected[name];
    const r = await readAll(FIXTURES + name);
    expect(r.error).toBeUndefined();
    expect(r.samples.map((s) => s.key)).toEqual(e.keys);
    expect(r.samples.map((s) => s.row)).toEqual(e.keys.map((_, i) => i));
    for (const s of r.samples) {
      expect([...s.files.keys()].sort()).toEqual(e.exts);
      expect(s.problem).toBeUndefined();
    }
    expect(sampleDigest(r.samples)).toBe(e.digest);
    expect(r.stats!.skippedNonRegular).toBe(e.skippedNonRegular);
    expect(r.stats!.gzip).toBe(name.endsWith('.tgz'));
  });

  it('agrees with a live webdataset run when one is available', async () => {
    const names = Object.keys(expected);
    const live = liveOracle(names.map((n) => FIXTURES + n), false);
    // Without WEBDATASET_SRC the written-down values above are the reference; with it, they are re-derived.
    for (const [i, name] of names.entries()) {
      const r = await readAll(FIXTURES + name);
      const ref = live?.[i] ?? { digest: expected[name].digest, samples: expected[name].keys.map((key) => ({ key })) };
      expect(sampleDigest(r.samples)).toBe(ref.digest);
      expect(r.samples.map((s) => s.key)).toEqual(ref.samples.map((s) => s.key));
    }
  });

  it('reads only the wanted extensions, keeping every member listed', async () => {
    const r = await readAll(FIXTURES + 'nemo-00000.tar', { wantExtensions: (ext) => ext === 'txt' || ext === 'json' });
    expect([...r.samples[0].files.keys()].sort()).toEqual(['json', 'txt']);
    expect(r.samples[0].members.map((m) => [m.ext, m.size])).toEqual([
      ['jpg', 225807],
      ['json', 110],
      ['txt', 74],
    ]);
    // Offsets as Python's TarInfo.offset gives them (this shard has pax headers: the first block of each member).
    expect(r.samples[0].members.map((m) => m.offset)).toEqual([0, 227840, 229888]);
  });
});

describe('a shard with every grouping corner case', () => {
  const t = tempDir();
  afterAll(t.cleanup);

  // Oracle with webdataset's warn_and_continue handler (with the default handler webdataset stops at the
  // repeated extension of b.d/001 with a ValueError, after yielding a/000).
  const EXPECTED_KEYS = [
    'a/000',
    'b.d/001',
    '002',
    'a/000',
    'dir/',
    '../evil',
    '/abs/003',
    './004',
    '005',
    '006',
    '007',
    `${'x'.repeat(120)}/008`,
    'y'.repeat(150),
    'ünï/009',
  ];
  const EXPECTED_EXTS = [
    ['jpg', 'json', 'seg.png', 'txt'],
    ['jpg', 'txt'],
    ['jpg'],
    ['jpg'],
    ['hidden.txt'],
    ['txt'],
    ['txt'],
    ['txt'],
    [''],
    [],
    ['txt'],
    ['txt'],
    ['txt'],
    ['txt'],
  ];
  const EXPECTED_DIGEST = '25e8b45360dbbb0274bb438f818b3a78e28025d859014b168adeec4243f7000a';

  it.each([false, true])('yields webdataset samples in order, marking problems (gzip: %s)', async (gzip) => {
    const path = writeBytes(t.path(gzip ? 'edge.tgz' : 'edge.tar'), await buildTar(EDGE_ENTRIES, { gzip }));
    const r = await readAll(path);
    expect(r.error).toBeUndefined();
    expect(summary(r.samples)).toEqual(EXPECTED_KEYS.map((key, i) => ({ key, exts: EXPECTED_EXTS[i] })));
    expect(sampleDigest(r.samples)).toBe(EXPECTED_DIGEST);
    expect(r.samples.map((s) => s.row)).toEqual(EXPECTED_KEYS.map((_, i) => i));

    const problems = r.samples.map((s) => s.problem?.status ?? null);
    expect(problems).toEqual([
      null,
      'duplicate_extension',
      null,
      null,
      null,
      'bad_member_name',
      'bad_member_name',
      null,
      null,
      'duplicate_extension',
      null,
      null,
      null,
      null,
    ]);
    // The repeated member is named, with its offset; the first one's bytes are the ones kept.
    expect(r.samples[1].problem!.message).toContain('"b.d/001.txt" at byte 10240');
    expect(r.samples[1].files.get('txt')!.toString()).toBe('c1');
    expect(r.samples[1].members.map((m) => m.name)).toEqual(['b.d/001.jpg', 'b.d/001.txt', 'b.d/001.txt']);
    expect(r.samples[5].problem!.message).toContain('../evil.txt');
    expect(r.samples[9].problem!.message).toContain('reserves');

    // What webdataset skips is counted, not lost.
    expect(r.stats).toMatchObject({
      entries: 25,
      members: 19,
      skippedNonRegular: 3,
      skippedMeta: 2,
      skippedNoExtension: 1,
      repeatedKeys: 1,
      gzip,
    });
    // Offsets point at each sample's first member header, as Python's TarInfo.offset (pax headers included).
    expect(r.samples.map((s) => s.offset)).toEqual([
      2560, 8192, 11776, 12800, 13824, 14848, 15872, 16896, 17920, 18944, 19968, 20480, 21504, 23552,
    ]);

    const live = liveOracle([path], true);
    if (live) {
      expect(live[0].digest).toBe(EXPECTED_DIGEST);
      expect(live[0].samples.map((s) => s.key)).toEqual(EXPECTED_KEYS);
    }
  });
});
