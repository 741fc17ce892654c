/**
 * scripts/install-cuda-ep offline (--from): it takes the two EP libraries out of a package tarball laid out like
 * com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz and installs them into --dest. The real package (and a GPU)
 * are not available here, so the tarball carries placeholder files at the real paths: this checks the script's
 * extraction, copy and error handling, not the libraries.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/bundles.js';

const script = join(REPO, 'scripts', 'install-cuda-ep');
const work = mkdtempSync(join(tmpdir(), 'mimic-cudaep-'));
const inner = 'package/Plugins/Linux/x64';

function tarball(name: string, files: string[]): string {
  const root = join(work, `${name}-src`);
  mkdirSync(join(root, inner), { recursive: true });
  for (const f of files) writeFileSync(join(root, inner, f), `payload of ${f}\n`);
  const out = join(work, `${name}.tgz`);
  const r = spawnSync('tar', ['czf', out, '-C', root, 'package']);
  expect(r.status).toBe(0);
  return out;
}

const run = (...args: string[]) => spawnSync('bash', [script, ...args], { encoding: 'utf8' });

describe('scripts/install-cuda-ep', () => {
  it('installs both libraries from a package tarball into the destination', () => {
    const tgz = tarball('good', ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so', 'libonnxruntime.so']);
    const dest = join(work, 'dest');
    mkdirSync(dest);
    const r = run('--from', tgz, '--dest', dest);
    expect(r.status, r.stderr).toBe(0);
    for (const f of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so']) {
      expect(readFileSync(join(dest, f), 'utf8')).toBe(`payload of ${f}\n`);
      expect(statSync(join(dest, f)).mode & 0o777).toBe(0o755);
      expect(r.stderr).toContain(`installed ${join(dest, f)}`);
    }
    expect(() => statSync(join(dest, 'libonnxruntime.so'))).toThrow();
    expect(r.stderr).toMatch(/run `mimic doctor`/);
  });

  it('says what is wrong with a tarball that lacks a library, a missing file, a bad destination or argument', () => {
    const dest = join(work, 'dest2');
    mkdirSync(dest);
    const partial = tarball('partial', ['libonnxruntime_providers_cuda.so']);
    const a = run('--from', partial, '--dest', dest);
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/does not contain .*libonnxruntime_providers_shared\.so .*com\.github\.asus4\.onnxruntime\.linux-x64-gpu-0\.4\.9\.tgz/);
    const b = run('--from', join(work, 'absent.tgz'), '--dest', dest);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/absent\.tgz is not a file/);
    const c = run('--from', partial, '--dest', join(work, 'no-such-dir'));
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/destination .*no-such-dir is not a folder/);
    const d = run('--frm', partial);
    expect(d.status).toBe(2);
    expect(d.stderr).toMatch(/unknown argument --frm/);
  });

  it('--help explains both installation routes', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/com\.github\.asus4\.onnxruntime\.linux-x64-gpu@0\.4\.9/);
    expect(r.stdout).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 node script\/install\.js/);
  });
});
