import { describe, expect, it } from 'vitest';
import { collectNeeds, formatRule, parseRule, RuleSyntaxError, type Expr } from '../../src/filter/expr.js';
import { ColumnCatalog } from '../../src/filter/catalog.js';
import { MimicError } from '../../src/errors.js';

const plain = new ColumnCatalog();
const datacomp = new ColumnCatalog(new Map([['clip_l14', 'number'], ['clip_b32', 'number'], ['basic', 'boolean'], ['english', 'boolean'], ['text_match', 'boolean']]), 'l14');

function fail(src: string, cat = plain): MimicError & { pos: number } {
  try {
    parseRule(src, cat);
  } catch (e) {
    expect(e).toBeInstanceOf(RuleSyntaxError);
    expect((e as MimicError).code).toBe('E_FILTER');
    return e as MimicError & { pos: number };
  }
  throw new Error(`"${src}" parsed`);
}

describe('rule language', () => {
  it('parses comparisons, percentiles, and/or/not with the usual precedence', () => {
    const e = parseRule('mimic_visual >= p70 and clip_score >= 0.28 or not loss > p99.5', plain);
    expect(formatRule(e)).toBe('(mimic_proj_visual >= p70 and ref_clip_sim >= 0.28) or not loss > p99.5');
    expect(e.kind).toBe('or');
    const needs = { percentiles: [] as { column: string; q: number }[], ranks: [] as Extract<Expr, { kind: 'rank' }>[], columns: new Set<string>() };
    collectNeeds(e, needs);
    expect(needs.percentiles).toEqual([{ column: 'mimic_proj_visual', q: 70 }, { column: 'loss', q: 99.5 }]);
    expect([...needs.columns].sort()).toEqual(['loss', 'mimic_proj_visual', 'ref_clip_sim']);
  });

  it('accepts parentheses, numbers in every form, reversed operands and the rank functions', () => {
    expect(formatRule(parseRule('not (mimic_text < -1.5e-3 or (loss==2))', plain))).toBe('not (mimic_proj_text < -0.0015 or loss == 2)');
    expect(formatRule(parseRule('p20 <= mimic_both', plain))).toBe('p20 <= mimic_proj_both');
    expect(formatRule(parseRule('mimic >= p70', plain))).toBe('mimic_proj_both >= p70');
    expect(formatRule(parseRule('.5 > clip_sim', plain))).toBe('0.5 > clip_sim');
    expect(formatRule(parseRule('loss = 3', plain))).toBe('loss == 3');
    expect(formatRule(parseRule('loss != 3', plain))).toBe('loss != 3');
    expect(formatRule(parseRule('top(clip_score, 30%) and bottom(mimic_visual, 1000)', plain))).toBe('top(ref_clip_sim, 30%) and bottom(mimic_proj_visual, 1000)');
    expect(formatRule(parseRule('mimic_cos_visual >= p0 and grad_norm_text <= p100', plain))).toBe('mimic_cos_visual >= p0 and grad_norm_text <= p100');
  });

  it('knows the DataComp columns, booleans bare, and clip_score as the metadata score', () => {
    expect(formatRule(parseRule('basic and text_match and english and clip_score >= p70', datacomp))).toBe('basic and text_match and english and clip_l14 >= p70');
    expect(formatRule(parseRule('not basic', datacomp))).toBe('not basic');
    expect(fail('basic', plain).message).toMatch(/unknown column "basic"/);
    expect(() => new ColumnCatalog(new Map(), 'b32')).toThrow(/--clip-score b32 needs clip_b32/);
  });

  it('points at the character in error, with a caret and a hint', () => {
    const e = fail('mimic_visual >= p70 and clip_scor >= 0.28');
    expect(e.message).toMatch(/unknown column "clip_scor" at character 25/);
    expect(e.message).toContain('\n    mimic_visual >= p70 and clip_scor >= 0.28\n    ' + ' '.repeat(24) + '^');
    expect(e.hint).toMatch(/did you mean clip_score/);
  });

  it.each([
    ['', /empty rule/, 0],
    ['mimic_visual', /mimic_visual is a number: compare it/, 12],
    ['mimic_visual >=', /expected a column, a number or a percentile/, 15],
    ['mimic_visual >= p101', /outside p0\.\.p100/, 16],
    ['(mimic_visual > 1', /expected "\)"/, 17],
    ['mimic_visual > 1)', /unexpected "\)"/, 16],
    ['mimic_visual > 1 && loss < 2', /unexpected character "&"/, 17],
    ['1 < mimic_visual < 2', /unexpected "<"/, 17],
    ['p70 >= p20', /needs a column/, 0],
    ['mimic_visual >= 30%', /only meaningful in top/, 16],
    ['loss > 2abc', /unexpected "a" after the number 2/, 8],
    ['top(mimic_visual 3)', /expected ","/, 17],
    ['top(mimic_visual, 2.5)', /whole number of rows/, 18],
    ['top(mimic_visual, 120%)', /outside 0%\.\.100%/, 18],
    ['mimic_visual > p50 and', /expected a column/, 22],
    ['and > 1', /keyword "and"/, 0],
    ['mimic_visual ~ 1', /unexpected character "~"/, 13],
    ['eval(1) > 2', /unknown column "eval"/, 0],
  ])('rejects %j', (src, re, pos) => {
    const e = fail(src);
    expect(e.message).toMatch(re);
    expect(e.message).toContain(`at character ${pos + 1} `);
  });

  it('rejects percentiles and ranks of true/false columns', () => {
    expect(fail('basic >= p50', datacomp).message).toMatch(/true\/false column/);
    expect(fail('top(basic, 10)', datacomp).message).toMatch(/cannot be ranked/);
  });

  it('never evaluates text as code', () => {
    // Anything outside the grammar is a syntax error, however JavaScript would read it.
    for (const src of ['process.exit(1)', 'loss > 1; process.exit(1)', '`${1}` > 1', 'loss > (() => 1)()', "require('fs')"]) {
      expect(() => parseRule(src, plain)).toThrow(RuleSyntaxError);
    }
  });
});
