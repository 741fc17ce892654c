/**
 * Outputs appear whole or not at all; what an interrupted process was writing (temporary files, scratch folders)
 * is removed on its way out, and nothing finished is touched.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtomicFile, releaseTemp, removeOpenTemps, trackTemp, writeFileAtomic, writeFileAtomicSync } from '../../src/atomic-file.js';

const dir = mkdtempSync(join(tmpdir(), 'mimic-atomic-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('atomic files', () => {
  it('publish only on commit; abort leaves the old file', async () => {
    const path = join(dir, 'a', 'out.bin');
    writeFileAtomicSync(path, 'v1');
    const f = AtomicFile.open(path);
    f.write('v2 partial');
    expect(readFileSync(path, 'utf8')).toBe('v1');
    expect(readdirSync(join(dir, 'a')).some((n) => n.startsWith('out.bin.tmp-'))).toBe(true);
    f.abort();
    expect(readdirSync(join(dir, 'a'))).toEqual(['out.bin']);
    await writeFileAtomic(path, 'v3');
    expect(readFileSync(path, 'utf8')).toBe('v3');
  });

  it('removeOpenTemps removes what is being written and tracked scratch folders, nothing finished', () => {
    const done = join(dir, 'b', 'done.bin');
    writeFileAtomicSync(done, 'finished');
    const open = AtomicFile.open(join(dir, 'b', 'open.bin'));
    open.write('half');
    const scratch = join(dir, 'scratch');
    mkdirSync(scratch);
    writeFileSync(join(scratch, 'run-0'), 'x');
    trackTemp(scratch);
    const released = join(dir, 'kept-scratch');
    mkdirSync(released);
    trackTemp(released);
    releaseTemp(released);

    expect(removeOpenTemps()).toBe(2);
    expect(readdirSync(join(dir, 'b'))).toEqual(['done.bin']);
    expect(existsSync(scratch)).toBe(false);
    expect(existsSync(released)).toBe(true);
    expect(removeOpenTemps()).toBe(0);
  });
});
