#!/usr/bin/env node
// Throughput of DataComp's caption filters (src/text/datacomp.ts), and, with --lid-eval, how well lid.176.ftz
// separates English from other languages on real translated text (the gettext catalogs in /usr/share/locale).
//
//   npx tsc -p tsconfig.json
//   node scripts/bench-datacomp-filters.mjs [--captions N] [--synsets imagenet21k_wordnet_ids.txt] [--lid-eval]
//
// Captions are generated from WordNet lemmas (deterministic), 4-16 words, so that every rule runs; the synset
// list defaults to a generated one of ~22k noun synsets (the size of ImageNet-21k's) when --synsets is not given.
import { mkdtempSync, readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DataCompFilters } from '../dist/text/datacomp.js';
import { bundledWordNetTablePath } from '../dist/text/synsets.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const nCaptions = Number(opt('--captions', '100000'));
let synsetsFile = opt('--synsets', undefined);

let seed = 12345;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};

const table = gunzipSync(readFileSync(bundledWordNetTablePath())).toString('utf8').split('\n');
const lemmas = [];
const nounOffsets = [];
for (const line of table) {
  if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
  const cols = line.split('\t');
  if (!cols[0].includes('_')) lemmas.push(cols[0]);
  if (cols[1] !== '') nounOffsets.push(cols[1]);
}
if (synsetsFile === undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-datacomp-'));
  synsetsFile = join(dir, 'synsets.txt');
  const picked = nounOffsets.filter((_, i) => i % 5 === 0).map((o) => 'n' + o.padStart(8, '0'));
  writeFileSync(synsetsFile, picked.join('\n') + '\n');
}

// a few stop words make the captions look English to fastText, as most DataComp captions are
const glue = ['a', 'the', 'of', 'on', 'in', 'with', 'and', 'for'];
const captions = [];
for (let i = 0; i < nCaptions; i++) {
  const n = 4 + Math.floor(rand() * 13);
  const words = [];
  for (let j = 0; j < n; j++) words.push(j % 3 === 1 ? glue[Math.floor(rand() * glue.length)] : lemmas[Math.floor(rand() * lemmas.length)]);
  captions.push(words.join(' '));
}
const size = { original_width: 640, original_height: 480 };

const t0 = performance.now();
const filters = await DataCompFilters.load({ synsetsFile });
const loadMs = performance.now() - t0;

function time(label, fn) {
  const start = performance.now();
  let kept = 0;
  for (const c of captions) if (fn(c)) kept++;
  const s = (performance.now() - start) / 1000;
  console.log(`${label.padEnd(34)} ${(captions.length / s).toFixed(0).padStart(8)} captions/s  (kept ${((100 * kept) / captions.length).toFixed(1)}%)`);
}

console.log(`node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${nCaptions} captions, load ${loadMs.toFixed(0)} ms`);
time('english (fastText lid.176.ftz)', (c) => filters.english(c).english);
time('basic filter (incl. fastText)', (c) => filters.basic(c, size).keep);
time('text match (WordNet, cold cache)', (c) => filters.textMatch(c));
time('text match (warm cache)', (c) => filters.textMatch(c));
time('text-based filter (incl. fastText)', (c) => filters.textBased(c).keep);

if (args.includes('--lid-eval')) lidEval();
if (args.includes('--shard')) await shardBench();

/** readShardCaptions on a generated shard of 4,000 samples with 48 KiB images (image bytes are skipped). */
async function shardBench() {
  const { createWriteStream, statSync, rmSync } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  const tar = (await import('tar-stream')).default;
  const { readShardCaptions } = await import('../dist/filter/metadata.js');
  const dir = mkdtempSync(join(tmpdir(), 'bench-captions-'));
  const path = join(dir, 'shard.tar');
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(path));
  const image = Buffer.alloc(48 * 1024, 7);
  const n = 4000;
  for (let i = 0; i < n; i++) {
    const key = String(i).padStart(9, '0');
    const entry = (name, data) => new Promise((res, rej) => pack.entry({ name, mtime: new Date(0) }, data, (e) => (e ? rej(e) : res())));
    await entry(key + '.jpg', image);
    await entry(key + '.txt', captions[i % captions.length]);
    await entry(key + '.json', JSON.stringify({ uid: i.toString(16).padStart(32, '0'), original_width: 640, original_height: 480 }));
  }
  pack.finalize();
  await done;
  const bytes = statSync(path).size;
  const t = performance.now();
  let rows = 0;
  for await (const r of readShardCaptions(path)) if (r.caption !== null) rows++;
  const s = (performance.now() - t) / 1000;
  console.log(`readShardCaptions: ${n} samples, ${(bytes / 1e6).toFixed(0)} MB tar: ${(rows / s).toFixed(0)} samples/s, ${(bytes / 1e6 / s).toFixed(0)} MB/s (page cache warm)`);
  rmSync(dir, { recursive: true });
}

/** English vs not-English on gettext catalogs: msgid (English) against msgstr (its translation). */
function lidEval() {
  const root = '/usr/share/locale';
  const langs = ['fr', 'de', 'es', 'it', 'pt', 'pt_BR', 'nl', 'pl', 'ru', 'uk', 'cs', 'sv', 'da', 'fi', 'hu', 'tr', 'ro', 'el', 'ja', 'zh_CN', 'zh_TW', 'ko', 'vi', 'id', 'ca', 'eu', 'gl', 'sk', 'sl', 'hr', 'sr', 'bg', 'nb', 'et', 'lt', 'lv', 'eo', 'ga', 'he', 'ar'];
  const english = new Set();
  const perLang = [];
  for (const lang of langs) {
    const dir = join(root, lang, 'LC_MESSAGES');
    if (!existsSync(dir)) continue;
    const texts = new Set();
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.mo')) continue;
      for (const [id, str] of readMo(join(dir, f))) {
        const s = clean(str);
        const e = clean(id);
        if (s === e || !usable(s)) continue;
        texts.add(s);
        if (usable(e)) english.add(e);
      }
    }
    if (texts.size < 50) continue;
    const expect = lang.split('_')[0] === 'nb' ? 'no' : lang.split('_')[0];
    let right = 0;
    let asEnglish = 0;
    for (const t of texts) {
      const g = filters.english(t);
      if (g.lang === expect) right++;
      if (g.english) asEnglish++;
    }
    perLang.push({ lang, expect, n: texts.size, top1: right / texts.size, asEnglish: asEnglish / texts.size });
  }
  let en = 0;
  for (const t of english) if (filters.english(t).english) en++;
  console.log(`\nlid.176.ftz on gettext catalogs in ${root} (strings with ≥ 3 words and ≥ 15 characters):`);
  console.log(`English msgids: ${english.size}, predicted en: ${((100 * en) / english.size).toFixed(2)}%`);
  let tot = 0;
  let totEn = 0;
  for (const r of perLang) {
    tot += r.n;
    totEn += r.asEnglish * r.n;
    console.log(`${r.lang.padEnd(6)} ${String(r.n).padStart(6)} strings  top-1 = ${r.expect}: ${(100 * r.top1).toFixed(1)}%  predicted en: ${(100 * r.asEnglish).toFixed(2)}%`);
  }
  console.log(`all translations: ${tot}, predicted en (would pass DataComp's English test): ${((100 * totEn) / tot).toFixed(2)}%`);
}

function clean(s) {
  // drop accelerator marks and printf directives that are not language
  return s.replace(/[_&~]/g, '').replace(/%[-+ #0-9.]*[a-zA-Z]/g, ' ').replace(/\s+/g, ' ').trim();
}

function usable(s) {
  return s.length >= 15 && s.split(' ').length >= 3;
}

/** (msgid, msgstr) pairs of a GNU .mo file (singular forms only). */
function* readMo(path) {
  const b = readFileSync(path);
  if (b.length < 28) return;
  const magic = b.readUInt32LE(0);
  const rd = magic === 0x950412de ? (o) => b.readUInt32LE(o) : magic === 0xde120495 ? (o) => b.readUInt32BE(o) : null;
  if (rd === null) return;
  const n = rd(8);
  const origTab = rd(12);
  const transTab = rd(16);
  for (let i = 0; i < n; i++) {
    const idLen = rd(origTab + 8 * i);
    const idOff = rd(origTab + 8 * i + 4);
    const strLen = rd(transTab + 8 * i);
    const strOff = rd(transTab + 8 * i + 4);
    if (idLen === 0) continue; // the header entry
    const id = b.toString('utf8', idOff, idOff + idLen).split('\0')[0];
    const str = b.toString('utf8', strOff, strOff + strLen).split('\0')[0];
    if (id.includes('\u0004')) continue; // msgctxt
    yield [id, str];
  }
}
