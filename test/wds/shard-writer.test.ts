import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { ShardWriter } from '../../src/wds/shard-writer.js';
import { makeSamples, readAll, tempDir, writeShard } from '../helpers/shards.js';

const t = tempDir();
afterAll(t.cleanup);
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('ShardWriter', () => {
  const samples = makeSamples(12, { imageBytes: [100, 3000] });

  it('writes samples that read back exactly, members in the order given', async () => {
    const path = await writeShard(t.path('rt.tar'), samples);
    const r = await readAll(path);
    expect(r.error).toBeUndefined();
    expect(r.samples.map((s) => s.key)).toEqual(samples.map((s) => s.key));
    for (const [i, s] of r.samples.entries()) {
      expect(s.members.map((m) => m.ext)).toEqual(['jpg', 'txt', 'json']);
      expect(s.files.get('jpg')).toEqual(samples[i].files.jpg);
      expect(s.files.get('txt')!.toString()).toBe(samples[i].files.txt);
      expect(s.files.get('json')!.toString()).toBe(samples[i].files.json);
    }
  });

  it('writes the same bytes every time, tar and tar.gz', async () => {
    const a = await writeShard(t.path('d1.tar'), samples);
    const b = await writeShard(t.path('d2.tar'), samples);
    expect(sha(a)).toBe(sha(b));
    const c = await writeShard(t.path('d1.tar.gz'), samples);
    const d = await writeShard(t.path('d2.tgz'), samples);
    expect(sha(c)).toBe(sha(d));
    expect(readFileSync(c).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const r = await readAll(c);
    expect(r.stats!.gzip).toBe(true);
    expect(r.samples).toHaveLength(samples.length);
  });

  it('writes fixed headers that Python tarfile reads: mtime 0, uid/gid 0, mode 0644, regular files', async () => {
    const path = await writeShard(t.path('hdr.tar'), [
      { key: 'dir/000', files: { jpg: Buffer.from('x'), txt: 'caption' } },
      { key: `${'k'.repeat(130)}`, files: { txt: 'long key' } },
      { key: 'ünï/001', files: { 'seg.png': Buffer.from('y') } },
    ]);
    const out = execFileSync(
      '/usr/bin/python3',
      [
        '-c',
        'import tarfile,sys,json\n' +
          'print(json.dumps([[m.name,m.mtime,m.uid,m.gid,m.mode,m.uname,m.gname,m.isreg(),m.size] for m in tarfile.open(sys.argv[1])]))',
        path,
      ],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual([
      ['dir/000.jpg', 0, 0, 0, 0o644, '', '', true, 1],
      ['dir/000.txt', 0, 0, 0, 0o644, '', '', true, 7],
      [`${'k'.repeat(130)}.txt`, 0, 0, 0, 0o644, '', '', true, 8],
      ['ünï/001.seg.png', 0, 0, 0, 0o644, '', '', true, 1],
    ]);
  });

  it.each([
    ['', { txt: 'x' }, 'non-empty'],
    ['a/../b', { txt: 'x' }, '".."'],
    ['/abs/a', { txt: 'x' }, 'absolute'],
    ['a.b', { txt: 'x' }, 'contain no "."'],
    ['dir/', { txt: 'x' }, 'contain no "."'],
    ['__meta__/x', { txt: 'x' }, 'would not read back'],
    ['k', {}, 'at least one file'],
    ['k', { 'a/b': 'x' }, 'contains "/"'],
    ['k', { JPG: 'x', jpg: 'y' }, 'once lower-cased'],
  ])('refuses key %j with files %j (E_SAMPLE)', async (key, files, why) => {
    const w = new ShardWriter(t.path(`bad-${Math.random()}.tar`));
    await expect(w.add(key, files)).rejects.toMatchObject({ code: 'E_SAMPLE', message: expect.stringContaining(why) });
    await w.abort();
  });

  it('refuses a key written twice (readers would see two samples with one key)', async () => {
    const w = new ShardWriter(t.path('twice.tar'));
    await w.add('a', { txt: '1' });
    await w.add('b', { txt: '2' });
    await expect(w.add('a', { txt: '3' })).rejects.toMatchObject({ code: 'E_SAMPLE' });
    await w.close();
    expect((await readAll(t.path('twice.tar'))).samples.map((s) => s.key)).toEqual(['a', 'b']);
  });

  it('is invisible until closed, and abort leaves nothing behind', async () => {
    const sub = t.path('atomic');
    const w = new ShardWriter(`${sub}/s.tar`);
    await w.add('a', { txt: 'x' });
    expect(existsSync(`${sub}/s.tar`)).toBe(false);
    expect(w.tempPath.startsWith(`${sub}/s.tar.tmp-`)).toBe(true);
    expect(existsSync(w.tempPath)).toBe(true);
    await w.close();
    expect(readdirSync(sub)).toEqual(['s.tar']);

    const v = new ShardWriter(`${sub}/gone.tar`);
    await v.add('a', { txt: 'x' });
    await v.abort();
    expect(readdirSync(sub)).toEqual(['s.tar']);
  });
});
