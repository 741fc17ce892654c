import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { braceExpand } from '../../src/wds/brace-expand.js';
import { expandShardSpecs, shardBasename, shardKind, shardNames } from '../../src/wds/shard-spec.js';
import { tempDir } from '../helpers/shards.js';

// Expected expansions were checked against bash's brace expansion (`echo PATTERN`), which Python's braceexpand
// (used by webdataset and OpenCLIP) follows, including its zero-padding rule.
describe('braceExpand', () => {
  it.each([
    ['s-{000..003}.tar', ['s-000.tar', 's-001.tar', 's-002.tar', 's-003.tar']],
    ['{a,b}{1,2}', ['a1', 'a2', 'b1', 'b2']],
    ['{a,b{1,2}}', ['a', 'b1', 'b2']],
    ['x{y}z', ['x{y}z']],
    ['{a..e..2}', ['a', 'c', 'e']],
    ['{1..10..3}', ['1', '4', '7', '10']],
    ['{3..1}', ['3', '2', '1']],
    ['{01..3}', ['01', '02', '03']],
    ['{-1..1}', ['-1', '0', '1']],
    ['{a,}b', ['ab', 'b']],
    ['{-05..5..5}', ['-05', '000', '005']],
    ['plain.tar', ['plain.tar']],
    ['lit\\{0..2\\}', ['lit{0..2}']],
    ['d{0..1}/s{8..10}', ['d0/s8', 'd0/s9', 'd0/s10', 'd1/s8', 'd1/s9', 'd1/s10']],
  ])('%s', (pattern, expected) => {
    expect(braceExpand(pattern)).toEqual(expected);
  });

  it('keeps the zero padding over a whole DataComp-sized range', () => {
    const out = braceExpand('{00000000..00012799}.tar');
    expect(out).toHaveLength(12800);
    expect(out[0]).toBe('00000000.tar');
    expect(out[12799]).toBe('00012799.tar');
  });

  it('refuses unbalanced braces with E_SHARD_SPEC', () => {
    expect(() => braceExpand('s-{000..003.tar')).toThrow(expect.objectContaining({ code: 'E_SHARD_SPEC' }));
    expect(() => braceExpand('s-000}.tar')).toThrow(expect.objectContaining({ code: 'E_SHARD_SPEC' }));
  });
});

describe('expandShardSpecs', () => {
  const t = tempDir();
  afterAll(t.cleanup);
  for (const p of ['a/s-0.tar', 'a/s-1.tar', 'a/s-2.tgz', 'a/.hidden.tar', 'b/c/s-9.tar', 'b/s-5.tar']) {
    mkdirSync(join(t.dir, p, '..'), { recursive: true });
    writeFileSync(join(t.dir, p), '');
  }

  it('joins lists with :: and expands braces in each, in order', async () => {
    const out = await expandShardSpecs([`${t.dir}/a/s-{0..1}.tar::${t.dir}/b/s-5.tar`, 'https://h/x-{00..01}.tar']);
    expect(out).toEqual([`${t.dir}/a/s-0.tar`, `${t.dir}/a/s-1.tar`, `${t.dir}/b/s-5.tar`, 'https://h/x-00.tar', 'https://h/x-01.tar']);
  });

  it('expands globs, sorted, without hidden files, with ** for any depth', async () => {
    expect(await expandShardSpecs([`${t.dir}/a/*.tar`])).toEqual([`${t.dir}/a/s-0.tar`, `${t.dir}/a/s-1.tar`]);
    expect(await expandShardSpecs([`${t.dir}/a/s-[02].t*`])).toEqual([`${t.dir}/a/s-0.tar`, `${t.dir}/a/s-2.tgz`]);
    expect(await expandShardSpecs([`${t.dir}/**/s-?.tar`])).toEqual([
      `${t.dir}/a/s-0.tar`,
      `${t.dir}/a/s-1.tar`,
      `${t.dir}/b/c/s-9.tar`,
      `${t.dir}/b/s-5.tar`,
    ]);
  });

  it('follows a symlinked folder in a glob', async () => {
    symlinkSync(join(t.dir, 'b'), join(t.dir, 'linked'));
    expect(await expandShardSpecs([`${t.dir}/linked/*.tar`])).toEqual([`${t.dir}/linked/s-5.tar`]);
  });

  it('reports a glob that matches nothing, an empty list entry, and a shard listed twice', async () => {
    await expect(expandShardSpecs([`${t.dir}/nope/*.tar`])).rejects.toMatchObject({ code: 'E_SHARD_SPEC' });
    await expect(expandShardSpecs([`${t.dir}/a/s-0.tar::`])).rejects.toMatchObject({ code: 'E_SHARD_SPEC' });
    await expect(expandShardSpecs([`${t.dir}/a/s-{0,0}.tar`])).rejects.toMatchObject({
      code: 'E_SHARD_SPEC',
      message: expect.stringContaining('more than once'),
    });
  });

  it('keeps missing literal paths (the reader reports them per shard) and turns file:// into a path', async () => {
    const url = pathToFileURL(join(t.dir, 'a', 's-0.tar')).href;
    expect(await expandShardSpecs([`${t.dir}/missing.tar`, url])).toEqual([`${t.dir}/missing.tar`, `${t.dir}/a/s-0.tar`]);
  });

  it('refuses pipe: unless allowed, with a hint naming --allow-pipe', async () => {
    const err = await expandShardSpecs(['pipe:cat x-{0..1}.tar']).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_USAGE' });
    expect(err.hint).toContain('--allow-pipe');
    expect(await expandShardSpecs(['pipe:cat x-{0..1}.tar'], { allowPipe: true })).toEqual(['pipe:cat x-0.tar', 'pipe:cat x-1.tar']);
  });

  it('classifies every kind of shard', () => {
    expect(['-', 'pipe:cat a', 'http://h/a', 'HTTPS://h/a', 's3://b/k', '/x.tar', 'rel.tar'].map(shardKind)).toEqual([
      'stdin',
      'pipe',
      'http',
      'http',
      's3',
      'file',
      'file',
    ]);
  });
});

describe('shardNames', () => {
  it('names shards relative to the folder they share, so equal basenames do not collide', () => {
    expect(shardNames(['/d/a/000.tar', '/d/b/000.tar', '/d/b/c/001.tar'])).toEqual(['a/000.tar', 'b/000.tar', 'b/c/001.tar']);
  });

  it('uses the basename for one shard or shards of one folder', () => {
    expect(shardNames(['/d/a/000.tar'])).toEqual(['000.tar']);
    expect(shardNames(['/d/a/000.tar', '/d/a/001.tar'])).toEqual(['000.tar', '001.tar']);
  });

  it('uses the URL path (not the query), keeping the host when hosts differ', () => {
    expect(shardNames(['https://h/p/a/0.tar?sig=1', 'https://h/p/b/0.tar?sig=2'])).toEqual(['a/0.tar', 'b/0.tar']);
    expect(shardNames(['https://h1/p/0.tar', 'https://h2/p/0.tar'])).toEqual(['h1/p/0.tar', 'h2/p/0.tar']);
    expect(shardNames(['s3://bucket/pool/0.tar', 's3://bucket/pool/1.tar'])).toEqual(['0.tar', '1.tar']);
  });

  it('adds a hash where only a query tells shards apart', () => {
    const names = shardNames(['https://h/0.tar?part=1', 'https://h/0.tar?part=2']);
    expect(names[0]).not.toBe(names[1]);
    expect(names[0]).toMatch(/^0\.tar-[0-9a-f]{8}$/);
  });

  it('names pipe: shards by the shard they read, and stdin as stdin', () => {
    expect(shardNames(['pipe:curl -s https://h/p/a/0.tar', 'pipe:curl -s https://h/p/b/0.tar'])).toEqual(['a/0.tar', 'b/0.tar']);
    expect(shardNames(['-'])).toEqual(['stdin']);
  });

  it('never produces a name that climbs out of the output folder', () => {
    const names = shardNames(['https://h/../x/0.tar', '/d/a b/0.tar']);
    for (const n of names) expect(n.split('/')).not.toContain('..');
    expect(shardBasename('https://h/p/0.tar?x=1')).toBe('0.tar');
  });
});
