/**
 * `mimic inspect` as a user runs it: the real launcher (bin/mimic → dist/, built by `npm test` before vitest),
 * real shards, exit statuses, and never a stack trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildTar, makeSamples, sampleEntries, tempDir, writeBytes } from '../helpers/shards.js';
import { EDGE_ENTRIES } from './edge-cases.js';

const bin = fileURLToPath(new URL('../../bin/mimic', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/wds/', import.meta.url));
const t = tempDir();
afterAll(t.cleanup);

function mimic(args: string[], input?: Buffer) {
  const r = spawnSync(process.execPath, [bin, '--log-level', 'info', '--log-format', 'json', ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace, whatever happened
  return r;
}

let good: string;
let broken: string;

beforeAll(async () => {
  const tar = await buildTar(sampleEntries(makeSamples(5, { imageBytes: [600, 900] })));
  good = writeBytes(t.path('pool', 'a', '000.tar'), tar);
  writeBytes(t.path('pool', 'b', '000.tar'), tar);
  broken = writeBytes(t.path('pool', 'b', '001.tar'), tar.subarray(0, 3000));
  writeBytes(t.path('edge.tar'), await buildTar(EDGE_ENTRIES));
}, 60_000);

describe('mimic inspect', () => {
  it('prints a table for the shared fixtures and exits 0', () => {
    const r = mimic(['inspect', `${FIXTURES}{sample.tgz,compressed.tar,nemo-00000.tar}`]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^shard\s+samples\s+members\s+bytes/);
    expect(lines.find((l) => l.startsWith('sample.tgz (gz)'))).toMatch(/\s90\s+180\s.*cls:90 png:90.*\sok$/);
    expect(lines.find((l) => l.startsWith('compressed.tar'))).toMatch(/\s3\s+3\s.*txt\.gz:3\s+non-regular:1\s+-\s+ok$/);
    expect(lines[lines.length - 1]).toMatch(/^total \(3 shards\)\s+94\s+186\s/);
  });

  it('--json gives the counts per shard and in total', () => {
    const r = mimic(['inspect', '--json', t.path('edge.tar'), `${FIXTURES}nemo-00000.tar`]);
    expect(r.status).toBe(1); // the edge shard has samples with problems
    const report = JSON.parse(r.stdout);
    const edge = report.shards[0];
    expect(edge).toMatchObject({
      name: expect.stringMatching(/\/edge\.tar$/), // no folder in common with the fixture: full paths
      status: 'ok',
      samples: 14,
      members: 19,
      skipped: { nonRegular: 3, meta: 2, noExtension: 1 },
      repeatedKeys: 1,
      problems: { bad_member_name: 2, duplicate_extension: 2 },
    });
    // Extensions as the members have them (the reserved "__key__" included: it is in the tar).
    expect(edge.extensions).toEqual({ '': 1, __key__: 1, 'hidden.txt': 1, jpg: 4, json: 1, 'seg.png': 1, txt: 9 });
    expect(edge.problemSamples[0]).toMatchObject({ row: 1, key: 'b.d/001', offset: 8192, status: 'duplicate_extension' });
    expect(report.total).toMatchObject({ shards: 2, failedShards: 0, samples: 15, members: 22 });
  });

  it('reports a broken shard, reads the next one, exits 1, and --sizes leaves the broken one out', () => {
    const sizes = t.path('out', 'sizes.json');
    const r = mimic(['inspect', '--sizes', sizes, t.path('pool', 'a', '000.tar'), broken, `${FIXTURES}sample.tgz`]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/b\/001\.tar .*FAILED \(E_TAR\)/);
    expect(r.stdout).toMatch(/b\/001\.tar: E_TAR: .*truncated at byte 3000/);
    expect(r.stdout).toMatch(/sample\.tgz .*\sok$/m);
    expect(JSON.parse(readFileSync(sizes, 'utf8'))).toEqual({ '000.tar': 5, 'sample.tgz': 90 });
    expect(readdirSync(t.path('out'))).toEqual(['sizes.json']); // written atomically: no temp file left
    const logged = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(logged.some((l) => l.level === 50 && l.code === 'E_TAR')).toBe(true);
  });

  it('names shards relative to their common folder, so equal basenames stay apart', () => {
    const r = mimic(['inspect', '--json', t.path('pool', '*', '000.tar')]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).shards.map((s: { name: string }) => s.name)).toEqual(['a/000.tar', 'b/000.tar']);
  });

  it('--sizes refuses shards that share a basename (exit 2, a hint)', () => {
    const r = mimic(['inspect', '--sizes', t.path('s2.json'), t.path('pool', '*', '000.tar')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('E_USAGE');
    expect(r.stderr).toContain('hint:');
  });

  it('a missing shard is reported per shard (exit 1); a glob matching nothing is a usage error (exit 2)', () => {
    const a = mimic(['inspect', t.path('nope.tar'), good]);
    expect(a.status).toBe(1);
    expect(a.stdout).toMatch(/nope\.tar: E_SOURCE: no such shard/);
    const b = mimic(['inspect', t.path('nothing-*.tar')]);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/E_SHARD_SPEC: the pattern .* matches no file/);
  });

  it('refuses pipe: without --allow-pipe and runs it with', () => {
    const refused = mimic(['inspect', `pipe:cat ${good}`]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('--allow-pipe');
    const allowed = mimic(['inspect', '--json', '--allow-pipe', `pipe:cat ${good}`]);
    expect(allowed.status).toBe(0);
    expect(JSON.parse(allowed.stdout).total.samples).toBe(5);
  });

  it('says how to install the AWS SDK when an s3:// shard is read without it', () => {
    // A resolve hook makes the optional SDK unresolvable, as on an install without optional dependencies.
    writeFileSync(
      t.path('no-sdk-hooks.mjs'),
      "export async function resolve(s, c, next) { if (s === '@aws-sdk/client-s3') { const e = new Error('Cannot find package ' + s); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }\n",
    );
    writeFileSync(t.path('no-sdk.mjs'), "import { register } from 'node:module';\nregister('./no-sdk-hooks.mjs', import.meta.url);\n");
    const r = spawnSync(process.execPath, ['--import', t.path('no-sdk.mjs'), bin, '--log-level', 'info', 'inspect', 's3://bucket/shard-000.tar'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('E_SOURCE: reading s3://bucket/shard-000.tar needs the AWS SDK (@aws-sdk/client-s3)');
    expect(r.stdout).toContain('hint: install it next to grad-mimic: npm install @aws-sdk/client-s3');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('reads a shard from stdin with -', () => {
    const r = mimic(['inspect', '--json', '-'], readFileSync(`${FIXTURES}sample.tgz`));
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.shards[0]).toMatchObject({ shard: '-', name: 'stdin', samples: 90, gzip: true });
  });
});
