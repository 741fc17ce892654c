import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC, tableToIPC, tableFromArrays } from 'apache-arrow';
import { ScoreTableBuilder, writeScoreFile, encodeScoreFile } from '../../src/scores/writer.js';
import { readScoreFile, readScoreMeta, ScoreFileReader } from '../../src/scores/reader.js';
import { listScoreRuns } from '../../src/scores/runs.js';
import { utf8Values, isValid } from '../../src/scores/columns.js';
import { FLOAT_COLUMNS, META, SCORE_COLUMNS, SCORE_FORMAT } from '../../src/scores/schema.js';
import { MimicError } from '../../src/errors.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mimic-scores-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sampleTable() {
  const b = new ScoreTableBuilder();
  b.addRow({ shard: 'pool/a.tar', row: 0, key: '000000000', uid: '0123456789abcdef0123456789abcdef', status: 'ok', batch: 0, batch_size: 2, loss: 1.25, clip_sim: 0.3, mimic_proj_visual: -0.5, mimic_cos_both: NaN });
  b.addRow({ shard: 'pool/a.tar', row: 1, key: '000000001', uid: null, status: 'decode_error', error: 'bad huffman table', batch: 0, loss: 9, mimic_proj_visual: 1 });
  b.addRow({ shard: 'pool/a.tar', row: 2, key: 'ü/ключ', uid: 'ffffffffffffffffffffffffffffffff', status: 'ok', batch: 0, batch_size: 2, loss: 0.75, mimic_proj_visual: 2.5 });
  return b.finish();
}

describe('score files', () => {
  it('round-trips every column, nulls and metadata through the Arrow IPC file format', async () => {
    const path = join(dir, 'ck/sub/a.arrow');
    await writeScoreFile(path, sampleTable(), { [META.shard]: 'pool/a.tar', [META.argsHash]: 'abc' });
    const d = await readScoreFile(path);
    expect(d.length).toBe(3);
    expect(d.metadata[META.format]).toBe(SCORE_FORMAT);
    expect(d.metadata[META.rows]).toBe('3');
    expect(d.metadata[META.argsHash]).toBe('abc');
    expect(d.schema.map((c) => c.name)).toEqual(SCORE_COLUMNS.map((c) => c.name));
    expect(utf8Values(d.columns.key as never)).toEqual(['000000000', '000000001', 'ü/ключ']);
    expect(utf8Values(d.columns.uid as never)).toEqual(['0123456789abcdef0123456789abcdef', null, 'ffffffffffffffffffffffffffffffff']);
    expect(utf8Values(d.columns.error as never)).toEqual([null, 'bad huffman table', null]);
    const loss = d.columns.loss as { values: Float32Array; validity: Uint8Array | null };
    // status not ok → null, whatever the row said; null reads back as NaN with the validity bit clear
    expect(Array.from(loss.values)).toEqual([1.25, NaN, 0.75]);
    expect([0, 1, 2].map((i) => isValid(loss.validity, i))).toEqual([true, false, true]);
    const cos = d.columns.mimic_cos_both as { values: Float32Array; validity: Uint8Array | null };
    // a NaN score of an ok row stays a (valid) NaN, distinguishable from null
    expect(Number.isNaN(cos.values[0])).toBe(true);
    expect(isValid(cos.validity, 0)).toBe(true);
    expect(isValid(cos.validity, 2)).toBe(false);
    const batch = d.columns.batch as { values: Int32Array; validity: Uint8Array | null };
    expect(isValid(batch.validity, 1)).toBe(false);
    // Independent reader: apache-arrow's own tableFromIPC sees the same schema and values.
    const t = tableFromIPC(readFileSync(path));
    expect(t.schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual(SCORE_COLUMNS.map((c) => `${c.name}:${c.type === 'utf8' ? 'Utf8' : c.type === 'float32' ? 'Float32' : c.type === 'int32' ? 'Int32' : 'Uint32'}`));
    expect(t.getChild('mimic_proj_visual')!.toArray()[2]).toBe(2.5);
    expect(t.getChild('mimic_proj_visual')!.get(1)).toBeNull();
    expect(t.getChild('row')!.toArray()).toEqual(new Uint32Array([0, 1, 2]));
    expect(t.schema.metadata.get(META.shard)).toBe('pool/a.tar');
  });

  it('reads a subset of columns and the metadata alone', async () => {
    const path = join(dir, 'subset.arrow');
    await writeScoreFile(path, sampleTable(), { [META.inputSize]: '12345' });
    const d = await readScoreFile(path, { columns: ['mimic_proj_visual', 'status'] });
    expect(Object.keys(d.columns).sort()).toEqual(['mimic_proj_visual', 'status']);
    expect(Array.from((d.columns.mimic_proj_visual as { values: Float32Array }).values)).toEqual([-0.5, NaN, 2.5]);
    const m = await readScoreMeta(path);
    expect(m.length).toBe(3);
    expect(m.metadata[META.inputSize]).toBe('12345');
    await expect(readScoreFile(path, { columns: ['nope'] })).rejects.toThrow(/column nope is not in the file/);
  });

  it('builds from typed arrays (the fast path) with the same nulls as addRow', async () => {
    const n = 5;
    const b = new ScoreTableBuilder();
    b.addColumns(n, {
      shard: 's.tar',
      row: Uint32Array.from([0, 1, 2, 3, 4]),
      key: ['a', 'b', 'c', 'd', 'e'],
      uid: ['1', null, '3', '4', '5'],
      status: ['ok', 'ok', 'no_caption', 'ok', 'ok'],
      error: [null, null, 'no .txt member', null, null],
      batch: Int32Array.from([0, 0, 0, 1, 1]),
      batch_size: Int32Array.from([3, 3, 3, 2, 2]),
      mimic_proj_visual: Float32Array.from([0.5, 1.5, 2.5, 3.5, 4.5]),
      // ref_clip_sim left out: all null
    });
    const path = join(dir, 'typed.arrow');
    await writeScoreFile(path, b.finish(), {});
    const d = await readScoreFile(path);
    expect(Array.from((d.columns.mimic_proj_visual as { values: Float32Array }).values)).toEqual([0.5, 1.5, NaN, 3.5, 4.5]);
    expect((d.columns.ref_clip_sim as { nullCount: number }).nullCount).toBe(5);
    expect(utf8Values(d.columns.shard as never)).toEqual(['s.tar', 's.tar', 's.tar', 's.tar', 's.tar']);
    expect(utf8Values(d.columns.error as never)).toEqual([null, null, 'no .txt member', null, null]);
    expect((d.columns.batch as { nullCount: number }).nullCount).toBe(1);
  });

  it('reads files with several record batches (concatenating them)', async () => {
    const t = sampleTable().toArrow({ [META.format]: SCORE_FORMAT, [META.rows]: '6' });
    const two = t.concat(t);
    expect(two.batches.length).toBe(2);
    const path = join(dir, 'two.arrow');
    writeFileSync(path, tableToIPC(two, 'file'));
    const d = await readScoreFile(path);
    expect(d.length).toBe(6);
    expect(utf8Values(d.columns.key as never)).toEqual(['000000000', '000000001', 'ü/ключ', '000000000', '000000001', 'ü/ключ']);
    expect(Array.from((d.columns.loss as { values: Float32Array }).values)).toEqual([1.25, NaN, 0.75, 1.25, NaN, 0.75]);
  });

  it('writes atomically: a failed write leaves neither a partial file nor a temporary one', async () => {
    const d = join(dir, 'atomic');
    mkdirSync(d);
    const good = join(d, 'a.arrow');
    await writeScoreFile(good, sampleTable(), { v: '1' });
    const before = readFileSync(good);
    // The rename into place fails (the destination is a non-empty folder): the temporary file, already
    // complete and fsynced, must be removed and nothing else touched.
    const blocked = join(d, 'b.arrow');
    mkdirSync(blocked);
    writeFileSync(join(blocked, 'keep'), 'x');
    const e = await writeScoreFile(blocked, sampleTable(), { v: '2' }).catch((x) => x);
    expect(e).toBeInstanceOf(MimicError);
    expect(e.code).toBe('E_IO');
    expect(e.file).toBe(blocked);
    expect(readdirSync(d).sort()).toEqual(['a.arrow', 'b.arrow']);
    expect(readdirSync(blocked)).toEqual(['keep']);
    // A bad metadata value fails before anything is created.
    await expect(writeScoreFile(good, sampleTable(), { v: 3 as unknown as string })).rejects.toThrow(/metadata v must be a string/);
    expect(readFileSync(good)).toEqual(before);
    expect(readdirSync(d).sort()).toEqual(['a.arrow', 'b.arrow']);
  });

  it('names the file in errors for missing, truncated, foreign and unfinished files', async () => {
    const path = join(dir, 'bad.arrow');
    await writeScoreFile(path, sampleTable(), {});
    const bytes = readFileSync(path);
    const expectScores = async (p: string, re: RegExp) => {
      const e = await readScoreFile(p).catch((x) => x);
      expect(e).toBeInstanceOf(MimicError);
      expect(e.code).toBe('E_SCORES');
      expect(e.file).toBe(p);
      expect(e.message).toMatch(re);
    };
    await expectScores(join(dir, 'missing.arrow'), /not found/);
    const cut = join(dir, 'cut.arrow');
    copyFileSync(path, cut);
    truncateSync(cut, bytes.length - 100);
    await expectScores(cut, /not an Arrow IPC file|corrupt|truncated/);
    const foreign = join(dir, 'foreign.arrow');
    writeFileSync(foreign, tableToIPC(tableFromArrays({ x: Float32Array.from([1]) }), 'file'));
    await expectScores(foreign, /column shard is missing/);
    const stream = join(dir, 'stream.arrow');
    writeFileSync(stream, tableToIPC(sampleTable().toArrow(), 'stream'));
    await expectScores(stream, /no ARROW1 trailer|not an Arrow IPC file/);
    // right columns, no format marker (another tool wrote it)
    const nometa = join(dir, 'nometa.arrow');
    writeFileSync(nometa, tableToIPC(sampleTable().toArrow({}), 'file'));
    await expectScores(nometa, /format is missing/);
    // ... but a caller may read it without the schema check
    expect(ScoreFileReader.open(nometa, { validate: false }).length).toBe(3);
  });

  it('encodes the same bytes for the same input (deterministic files)', () => {
    const a = encodeScoreFile(sampleTable(), { x: '1' });
    const b = encodeScoreFile(sampleTable(), { x: '1' });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('lists checkpoints of a run root and of a checkpoint folder, skipping manifests and temporary files', async () => {
    const root = join(dir, 'run');
    for (const ck of ['ck-b', 'ck-a']) {
      await writeScoreFile(join(root, ck, 'x/0.arrow'), sampleTable(), {});
      await writeScoreFile(join(root, ck, 'y/0.arrow'), sampleTable(), {});
    }
    mkdirSync(join(root, '_manifests'));
    writeFileSync(join(root, '_manifests/worker-0-of-1.json'), '{}');
    writeFileSync(join(root, 'ck-a/x/1.arrow.tmp-1-abcd'), 'partial');
    const runs = listScoreRuns(root);
    expect(runs.checkpoints.map((c) => c.name)).toEqual(['ck-a', 'ck-b']);
    expect(runs.checkpoints[0].files).toEqual(['x/0.arrow', 'y/0.arrow']);
    const one = listScoreRuns(join(root, 'ck-b'));
    expect(one.checkpoints.map((c) => [c.name, c.files.length])).toEqual([['ck-b', 2]]);
    expect(() => listScoreRuns(join(dir, 'nothing-here'))).toThrow(/score run not found/);
    mkdirSync(join(dir, 'empty'));
    expect(() => listScoreRuns(join(dir, 'empty'))).toThrow(/no score files/);
    expect(existsSync(join(root, 'ck-a/x/0.arrow'))).toBe(true);
  });

  it('keeps every float column of the schema', () => {
    expect(FLOAT_COLUMNS).toContain('mimic_proj_visual');
    const t = sampleTable();
    for (const c of FLOAT_COLUMNS) expect(t.columns[c].type).toBe('float32');
  });
});

describe('run roots without manifests', () => {
  it('recognise checkpoint folders by the checkpoint name their files record', async () => {
    const { mkdtempSync: mk } = await import('node:fs');
    const root = mk(join(tmpdir(), 'mimic-runs-'));
    try {
      for (const ck of ['ep1', 'ep2']) {
        const b = new ScoreTableBuilder();
        b.addRow({ shard: 's.tar', row: 0, key: 'k', uid: null, status: 'ok', loss: 1 });
        await writeScoreFile(join(root, ck, 'part/s.arrow'), b.finish(), { [META.checkpoint]: ck });
      }
      expect(listScoreRuns(root).checkpoints.map((c) => [c.name, c.files])).toEqual([['ep1', ['part/s.arrow']], ['ep2', ['part/s.arrow']]]);
      // a folder of shard subfolders without checkpoint names is one checkpoint
      expect(listScoreRuns(join(root, 'ep1')).checkpoints.map((c) => [c.name, c.files])).toEqual([['ep1', ['part/s.arrow']]]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
