/**
 * `mimic reshard` on generated shards: DataComp's duplicate behaviour, resuming (after damage and after a real
 * SIGKILL), samples that cannot be copied whole, broken source shards, and the arguments it refuses.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reshard } from '../../src/wds/reshard.js';
import { KeyMultiset, readSelection, uidWords } from '../../src/wds/reshard-select.js';
import { buildTar, makeSamples, sampleEntries, tempDir, writeBytes, writeShard } from '../helpers/shards.js';
import { MIMIC, folderHashes, mimic, npyOf, outputShards, readSamples } from './helpers.js';

const t = tempDir('mimic-reshard-');
afterAll(() => t.cleanup());

/** Three source shards of 5 samples (uids in their json), and the samples for reference. */
const samples = [0, 1, 2].map((s) => makeSamples(5, { seed: 10 + s, keyPrefix: `s${s}-`, imageBytes: [2000, 4000] }));
const uidOf = (s: number, i: number) => (JSON.parse(samples[s]![i]!.files.json) as { uid: string }).uid;
const sources = [0, 1, 2].map((s) => t.path('src', `part-${s}.tar`));
let n = 0;
const fresh = () => t.path(`out-${n++}`);

beforeAll(async () => {
  for (const [s, list] of samples.entries()) await writeShard(sources[s]!, list);
});

describe('DataComp behaviour', () => {
  it('writes a uid listed k times k times, keyed {uid}-0 … {uid}-(k-1), in source order', async () => {
    const out = fresh();
    const listed = [uidOf(2, 4), uidOf(0, 1), uidOf(1, 3), uidOf(0, 1), uidOf(1, 3), uidOf(1, 3)];
    writeBytes(t.path('dup.npy'), npyOf(listed));
    const summary = await reshard({ selection: t.path('dup.npy'), sources, out, shardSize: 4 });
    expect(summary).toMatchObject({ written: 6, shards: 2, notFound: 0, skipped: {}, selection: { kind: 'uid', ids: 6, distinct: 3 } });
    const written = await readSamples(outputShards(out));
    expect(written.map((w) => w.key)).toEqual([
      `${uidOf(0, 1)}-0`, `${uidOf(0, 1)}-1`, `${uidOf(1, 3)}-0`, `${uidOf(1, 3)}-1`, `${uidOf(1, 3)}-2`, `${uidOf(2, 4)}-0`,
    ]);
    const src = samples[1]![3]!.files;
    for (const w of written.slice(2, 5)) {
      expect(w.members.map((m) => m.ext)).toEqual(['jpg', 'txt', 'json']);
      expect(w.members[0]!.bytes.equals(src.jpg)).toBe(true);
      expect(w.members[1]!.bytes.toString()).toBe(src.txt);
      expect(w.members[2]!.bytes.toString()).toBe(src.json);
    }
    // DataComp's per-shard stats field, and OpenCLIP's sizes.json.
    expect(JSON.parse(readFileSync(join(out, '00000000_stats.json'), 'utf8')).successes).toBe(4);
    expect(JSON.parse(readFileSync(join(out, 'sizes.json'), 'utf8'))).toEqual({ '00000000.tar': 4, '00000001.tar': 2 });
  });

  it('counts the listed ids that match no sample', async () => {
    writeBytes(t.path('missing.txt'), Buffer.from(`${uidOf(0, 0)}\n${'f'.repeat(32)}\n${'e'.repeat(32)}\n`));
    const r = await mimic(['reshard', t.path('missing.txt'), '--shards', ...sources, '--out', fresh()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('wrote 1 sample(s) in 1 shard(s)');
    expect(r.stdout).toContain('warning: 2 listed id(s) matched no sample in the 3 source shard(s)');
  });
});

describe('resuming', () => {
  // u(0,1) ×1, u(1,2) ×3, u(2,0) ×1 with 2 samples a shard: the first boundary falls between copies of one uid.
  const listed = () => [uidOf(0, 1), uidOf(1, 2), uidOf(1, 2), uidOf(1, 2), uidOf(2, 0)];
  const outputs = (dir: string) => folderHashes(dir, (f) => f !== 'reshard.json');

  it('keeps verified shards, rewrites from the first damaged one, and ends with the same bytes', async () => {
    writeBytes(t.path('resume.txt'), Buffer.from(listed().join('\n')));
    const opts = { selection: t.path('resume.txt'), sources, shardSize: 2 };
    const reference = fresh();
    await reshard({ ...opts, out: reference });
    const want = outputs(reference);
    expect(Object.keys(want).filter((f) => f.endsWith('.tar'))).toEqual(['00000000.tar', '00000001.tar', '00000002.tar']);
    expect(JSON.parse(readFileSync(join(reference, '00000001_stats.json'), 'utf8')).start).toEqual({ source: 1, row: 2, copy: 1 });

    const out = fresh();
    await reshard({ ...opts, out });
    const st = (f: string) => statSync(join(out, f));
    const before = Object.fromEntries(readdirSync(out).map((f) => [f, { ino: st(f).ino, mtimeMs: st(f).mtimeMs }]));

    // A complete reshard: every shard verified, nothing written.
    const again = await reshard({ ...opts, out });
    expect(again).toMatchObject({ shards: 3, resumedShards: 3, samplesRead: 0 });
    for (const f of Object.keys(before).filter((f) => f !== 'reshard.json')) expect({ f, ...before[f] }).toEqual({ f, ino: st(f).ino, mtimeMs: st(f).mtimeMs });

    // Shard 1's stats lost and a temporary file left, as a crash leaves them: shard 0 is kept, the rest redone.
    writeFileSync(join(out, '00000001_stats.json'), '{"format": "mimic-reshard-stats/1", "trunc');
    // Dated in 2000, so that a rewrite shows (an inode number may be reused for the new file).
    const y2000 = new Date('2000-01-01T00:00:00Z');
    utimesSync(join(out, '00000001.tar'), y2000, y2000);
    writeFileSync(join(out, '00000002.tar.tmp-99-abcd'), 'partial');
    const resumed = await reshard({ ...opts, out });
    expect(resumed).toMatchObject({ shards: 3, resumedShards: 1, written: 5 });
    expect({ ino: st('00000000.tar').ino, mtimeMs: st('00000000.tar').mtimeMs }).toEqual(before['00000000.tar']);
    expect(st('00000001.tar').mtimeMs).not.toBe(y2000.getTime());
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(outputs(out)).toEqual(want);

    // One changed byte in shard 1: its sha256 no longer matches its stats, so it is rewritten.
    const p1 = join(out, '00000001.tar');
    const bytes = readFileSync(p1);
    bytes[600] = bytes[600]! ^ 1;
    writeFileSync(p1, bytes);
    expect(await reshard({ ...opts, out })).toMatchObject({ resumedShards: 1 });
    expect(outputs(out)).toEqual(want);
  });

  it('resumes after a SIGKILL inside a source shard and ends with the bytes of an uninterrupted run', async () => {
    // Source 2 comes through a command that sends part of it and then waits, until `release` exists.
    const release = t.path('release');
    const gate = t.path('gate.sh');
    writeFileSync(gate, `#!/bin/sh\nif [ -e ${release} ]; then exec cat "$1"; fi\nhead -c 6000 "$1"\nexec sleep 120\n`);
    const spec = `${sources[0]}::${sources[1]}::pipe:sh ${gate} ${sources[2]}`;
    writeBytes(t.path('kill.txt'), Buffer.from(listed().join('\n')));
    const args = ['reshard', t.path('kill.txt'), '--shards', spec, '--allow-pipe', '--shard-size', '2'];

    const out = fresh();
    const child = spawn(MIMIC, [...args, '--out', out], { stdio: 'ignore', detached: true });
    const deadline = Date.now() + 30_000;
    // Shards 0 and 1 are complete once the reader is inside source 2 (shard 1 closes when u(2,0) would follow it,
    // which it cannot before the gate opens); wait for shard 0's stats, then for the reader to block.
    while (!existsSync(join(out, '00000000_stats.json')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(join(out, '00000000_stats.json'))).toBe(true);
    process.kill(-child.pid!, 'SIGKILL'); // the process group: mimic, the shell and its sleep
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(join(out, 'sizes.json'))).toBe(false);

    writeFileSync(release, '');
    const resumed = await mimic([...args, '--out', out, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout) as { resumedShards: number; written: number };
    expect(summary.resumedShards).toBeGreaterThanOrEqual(1);
    expect(summary.written).toBe(5);
    const reference = fresh();
    expect((await mimic([...args, '--out', reference])).code).toBe(0);
    expect(outputs(out)).toEqual(outputs(reference));
  });
});

describe('samples that cannot be copied whole', () => {
  it('skips a kept sample with an unsafe member name or a repeated extension, says so, and writes nothing outside --out', async () => {
    const good = makeSamples(2, { seed: 30, keyPrefix: 'g' });
    const uid = (tag: string) => `${tag.repeat(32)}`.slice(0, 32);
    const tar = await buildTar([
      ...sampleEntries([good[0]!]),
      { name: '../evil.txt', data: 'escape' },
      { name: '../evil.json', data: JSON.stringify({ uid: uid('a') }) },
      { name: 'twice.jpg', data: 'one' },
      { name: 'twice.jpg', data: 'two' },
      { name: 'twice.json', data: JSON.stringify({ uid: uid('b') }) },
      ...sampleEntries([good[1]!]),
    ]);
    const src = writeBytes(t.path('bad', 'bad.tar'), tar);
    const keptUids = [uid('a'), uid('b'), (JSON.parse(good[0]!.files.json) as { uid: string }).uid, (JSON.parse(good[1]!.files.json) as { uid: string }).uid];
    writeBytes(t.path('bad', 'kept.txt'), Buffer.from(keptUids.join('\n')));
    const parent = t.path('bad', 'outs');
    mkdirSync(parent);
    const out = join(parent, 'kept');
    const r = await mimic(['reshard', t.path('bad', 'kept.txt'), '--shards', src, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('wrote 2 sample(s) in 1 shard(s)');
    expect(r.stdout).toContain('not written (kept samples that cannot be copied whole): bad_member_name 1, duplicate_extension 1');
    expect(readdirSync(parent)).toEqual(['kept']);
    expect(readdirSync(dirname(parent)).sort()).toEqual(['bad.tar', 'kept.txt', 'outs']);
    const written = await readSamples(outputShards(out));
    expect(written.map((w) => w.members.map((m) => m.ext))).toEqual([['jpg', 'txt', 'json'], ['jpg', 'txt', 'json']]);
    const stats = JSON.parse(readFileSync(join(out, '00000000_stats.json'), 'utf8')) as { skipped: Record<string, number> };
    expect(stats.skipped).toEqual({ bad_member_name: 1, duplicate_extension: 1 });
  });
});

describe('broken source shards', () => {
  const broken = t.path('broken', 'part-1.tar');
  const list = () => [sources[0]!, broken, sources[2]!];
  beforeAll(async () => {
    const whole = await buildTar(sampleEntries(samples[1]!));
    // Cut inside the fourth sample's caption (its image is whole): three samples are whole, the fourth is cut short.
    const entries = sampleEntries(samples[1]!);
    let offset = 0;
    for (const e of entries.slice(0, 10)) offset += 512 + Math.ceil(Buffer.byteLength(e.data!) / 512) * 512;
    writeBytes(broken, whole.subarray(0, offset + 512 + 5));
  });

  it('stops with an error naming the shard, keeps the complete output shards, and --allow-broken writes what is readable', async () => {
    // By key: a sample cut short still has its key (its json, last, may be gone), so it is matched and skipped.
    const all = samples.flatMap((list) => list.map((x) => x.key));
    writeBytes(t.path('broken', 'all.txt'), Buffer.from(all.join('\n')));
    const out = fresh();
    const args = ['reshard', t.path('broken', 'all.txt'), '--shards', ...list(), '--shard-size', '2', '--out', out];
    const r = await mimic(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(broken);
    expect(r.stderr).toContain('output shard(s) before it are complete');
    expect(r.stderr).toContain('--allow-broken');
    // Samples come out as they are read: shards 0-2 (source 0, then source 1's first sample) were complete
    // before the break was found; shard 3, open then, is discarded. A rerun resumes after shard 2.
    expect(outputShards(out).map((p) => p.slice(-12))).toEqual(['00000000.tar', '00000001.tar', '00000002.tar']);
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual([]);

    const allowed = await mimic([...args, '--allow-broken', '--json']);
    expect(allowed.code).toBe(1);
    const summary = JSON.parse(allowed.stdout) as { written: number; resumedShards: number; skipped: Record<string, number>; brokenSources: { shard: string }[] };
    // 5 + 3 whole samples of the broken shard + 5; the fourth, cut short, is not written; the fifth was never read.
    expect(summary).toMatchObject({ written: 13, resumedShards: 3, skipped: { truncated: 1 }, notFound: 1, brokenSources: [{ shard: 'broken/part-1.tar' }] });
    expect(allowed.stderr).toMatch(/source shard broken/);
    const written = await readSamples(outputShards(out));
    expect(written.map((w) => w.key)).toEqual([
      ...[0, 1, 2, 3, 4].map((i) => `${uidOf(0, i)}-0`),
      ...[0, 1, 2].map((i) => `${uidOf(1, i)}-0`),
      ...[0, 1, 2, 3, 4].map((i) => `${uidOf(2, i)}-0`),
    ]);
  });
});

describe('arguments it refuses', () => {
  it('another reshard in --out: says what differs (exit 2 from the CLI)', async () => {
    writeBytes(t.path('args.txt'), Buffer.from(uidOf(0, 0)));
    const out = fresh();
    await reshard({ selection: t.path('args.txt'), sources, out, shardSize: 2 });
    await expect(reshard({ selection: t.path('args.txt'), sources, out, shardSize: 3 })).rejects.toThrow(/holds a reshard with other arguments:\n {2}shardSize: 2 here, 3 now/);
    const r = await mimic(['reshard', t.path('args.txt'), '--shards', ...sources, '--out', out, '--shard-size', '3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('shardSize: 2 here, 3 now');
  });

  it('a non-empty folder that holds no reshard, and a source inside --out', async () => {
    writeBytes(t.path('args.txt'), Buffer.from(uidOf(0, 0)));
    await expect(reshard({ selection: t.path('args.txt'), sources, out: t.path('src') })).rejects.toThrow(/lies inside the output folder/);
    const other = t.path('not-empty');
    writeBytes(join(other, 'notes.txt'), Buffer.from('mine'));
    await expect(reshard({ selection: t.path('args.txt'), sources, out: other })).rejects.toThrow('is not empty and holds no reshard (notes.txt)');
    expect(readdirSync(other)).toEqual(['notes.txt']);
  });

  it('a table that names a shard which is not a source, a bad uid line, an npy of another dtype, no sources', async () => {
    const table = t.path('sel', 'rows.arrow');
    const { tableToIPC, tableFromArrays } = await import('apache-arrow');
    writeBytes(table, Buffer.from(tableToIPC(tableFromArrays({ shard: ['elsewhere/x.tar'], row: Uint32Array.from([0]) }), 'file')));
    await expect(reshard({ selection: table, sources, out: fresh() })).rejects.toThrow('names the shard "elsewhere/x.tar", which is not among the source shards');
    writeBytes(t.path('sel', 'bad.txt'), Buffer.from(`${uidOf(0, 0)}\nnot-a-uid\n`));
    await expect(reshard({ selection: t.path('sel', 'bad.txt'), idKind: 'uid', sources, out: fresh() })).rejects.toThrow('line 2 is not a uid');
    const npy = npyOf([uidOf(0, 0)]);
    npy.write("'<u4'", npy.indexOf("'<u8'"), 'latin1');
    writeBytes(t.path('sel', 'u4.npy'), npy);
    await expect(reshard({ selection: t.path('sel', 'u4.npy'), sources, out: fresh() })).rejects.toThrow('is not a DataComp uid subset');
    const r = await mimic(['reshard', t.path('args.txt'), '--out', fresh()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--run OUT');
  });
});

describe('the kept-id set', () => {
  it('counts repeated keys and sorts any order like a plain comparison sort', () => {
    const n = 5000;
    const words = new Uint32Array(n * 4);
    let x = 12345;
    const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < n; i++) {
      // Few distinct high words, so that keys share prefixes and repeat.
      words.set([rnd() % 7, rnd() % 3, rnd() % 50, rnd() % 11], i * 4);
    }
    const keys = Array.from({ length: n }, (_, i) => Array.from(words.subarray(i * 4, i * 4 + 4)));
    const set = KeyMultiset.fromWords(words.slice(), n);
    const counts = new Map<string, number>();
    for (const k of keys) counts.set(k.join(','), (counts.get(k.join(',')) ?? 0) + 1);
    expect(set.size).toBe(n);
    expect(set.distinct).toBe(counts.size);
    for (const [k, c] of counts) expect(set.count(k.split(',').map(Number))).toBe(c);
    expect(set.count([7, 0, 0, 0])).toBe(0);
    // The same keys in another order: the same set (its hash is part of the reshard's identity).
    const w2 = new Uint32Array(n * 4);
    keys.slice().reverse().forEach((k, i) => w2.set(k, i * 4));
    expect(KeyMultiset.fromWords(w2, n).hash).toBe(set.hash);
    w2[0] = w2[0]! + 1;
    expect(KeyMultiset.fromWords(w2, n).hash).not.toBe(set.hash);
  });

  it('reads uids as Python int(uid, 16) does, and a text file of keys when its lines are not all uids', async () => {
    const w = new Uint32Array(4);
    expect(uidWords('ABC', w)).toBe(true);
    expect(Array.from(w)).toEqual([0, 0, 0, 0xabc]);
    expect(uidWords('0123456789abcdef0123456789ABCDEF', w)).toBe(true);
    expect(Array.from(w)).toEqual([0x01234567, 0x89abcdef, 0x01234567, 0x89abcdef]);
    expect(uidWords('g'.repeat(32), w)).toBe(false);
    expect(uidWords('1'.repeat(33), w)).toBe(false);
    writeBytes(t.path('sel', 'mixed.txt'), Buffer.from(`${'a'.repeat(32)}\n# a comment\n\nsome/key\n`));
    const sel = await readSelection(t.path('sel', 'mixed.txt'));
    expect(sel.kind).toBe('key');
    expect(sel.ids.size).toBe(2);
  });
});
