/**
 * A shard with every grouping corner case found in the wild, in one tar. What Python's webdataset yields for it
 * was established by running test/wds/oracle/webdataset_oracle.py (webdataset at commit e0953f9) on the bytes
 * that `buildTar(EDGE_ENTRIES)` produces; the results are written down in grouping.test.ts.
 */
import type { RawEntry } from '../helpers/shards.js';

export const EDGE_ENTRIES: RawEntry[] = [
  { name: 'dir', type: 'directory' }, // non-regular: skipped
  { name: '__meta__', data: 'm' }, // top-level __*__: skipped
  { name: '__index__/x.json', data: '{}' }, // under a __*__ folder: skipped
  { name: 'a/000.jpg', data: 'J0' },
  { name: 'a/000.TXT', data: 'caption0' }, // extension lower-cased
  { name: 'a/000.seg.png', data: 'S0' }, // extension = everything after the first dot of the basename
  { name: 'README', data: 'no extension' }, // no extension: skipped, and a/000 goes on
  { name: 'a/000.json', data: '{"uid":"0"}' },
  { name: 'link.jpg', type: 'symlink', linkname: 'a/000.jpg' }, // symlink: skipped
  { name: 'b.d/001.jpg', data: 'J1' }, // a dot in a folder name is not the key's end
  { name: 'b.d/001.txt', data: 'c1' },
  { name: 'b.d/001.txt', data: 'c1-again' }, // repeated extension
  { name: 'hard.txt', type: 'link', linkname: 'b.d/001.txt' }, // hard link: skipped
  { name: '002.jpg', data: 'J2' },
  { name: 'a/000.jpg', data: 'J0-again' }, // the key comes back: a new sample
  { name: 'dir/.hidden.txt', data: 'h' }, // regex quirk: key "dir/", extension "hidden.txt"
  { name: '../evil.txt', data: 'e' }, // traversal
  { name: '/abs/003.txt', data: 'abs' }, // absolute
  { name: './004.txt', data: '4' },
  { name: '005.', data: 'empty extension' },
  { name: '006.__key__', data: 'x' }, // an extension webdataset reserves
  { name: '007.txt', data: '' }, // empty member
  { name: `${'x'.repeat(120)}/008.txt`, data: 'long name' }, // needs the ustar prefix field
  { name: `${'y'.repeat(150)}.txt`, data: 'longer name' }, // needs a pax header
  { name: 'ünï/009.txt', data: 'utf-8 name' }, // pax header too
];
