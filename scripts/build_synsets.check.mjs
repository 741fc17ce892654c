#!/usr/bin/env node
// Compares src/text/synsets.ts (built into dist/) with NLTK on the word list that
// `scripts/build_synsets.py oracle --out FILE` wrote: every word's first WordNet 3.0 synset offset must agree.
//   /usr/bin/python3 scripts/build_synsets.py oracle --out /tmp/wn-oracle.tsv
//   npx tsc -p tsconfig.json && node scripts/build_synsets.check.mjs /tmp/wn-oracle.tsv
import { readFileSync } from 'node:fs';
import { WordNet30 } from '../dist/text/synsets.js';

const file = process.argv[2];
if (!file) {
  console.error('usage: node scripts/build_synsets.check.mjs ORACLE.tsv');
  process.exit(2);
}
const wn = await WordNet30.load();
let n = 0;
let bad = 0;
const t0 = performance.now();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (line === '') continue;
  const tab = line.lastIndexOf('\t');
  const word = line.slice(0, tab);
  const want = line.slice(tab + 1);
  const first = wn.firstSynset(word);
  const got = first === null ? '-' : String(first.offset);
  n += 1;
  if (got !== want) {
    bad += 1;
    if (bad <= 20) console.log(`MISMATCH ${JSON.stringify(word)}: nltk ${want}, ours ${got}`);
  }
}
const s = (performance.now() - t0) / 1000;
console.log(`${n} words, ${bad} mismatches, ${(n / s).toFixed(0)} lookups/s`);
process.exit(bad === 0 ? 0 : 1);
