/** Small outputs (sizes.json and the like) written whole: a temporary file in the same folder, then a rename. */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MimicError, errorMessage } from '../errors.js';

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(temp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true });
    throw new MimicError('E_IO', `cannot write ${path}: ${errorMessage(e)}`, {
      file: path,
      hint: 'check that the folder exists and is writable',
      cause: e,
    });
  }
}
