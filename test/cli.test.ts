import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/mimic', import.meta.url));

describe('mimic launcher', () => {
  it('prints its version from package.json', async () => {
    const r = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    const { default: pkg } = await import('../package.json', { with: { type: 'json' } });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('rejects an unknown command with a usage status and no stack trace', () => {
    const r = spawnSync(process.execPath, [bin, 'no-such-command'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command|too many arguments/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
