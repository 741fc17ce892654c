#!/usr/bin/env python3
"""Reference CLIP BPE tokenizer with OpenAI's simple_tokenizer semantics, written for this project's tests.

Cleanup is OpenAI's minus ftfy (not installed here; NO ftfy.fix_text unless --ftfy is given and ftfy imports):
html.unescape twice, strip, collapse whitespace runs (Python's \\s) to one space, lower(); then the `regex`
pattern below, UTF-8 bytes mapped to printable characters (bytes_to_unicode), and BPE with the first 48,894
merges of the vocabulary file.

Usage:
  clip_tokenizer_ref.py --vocab PATH [--context-length N] [--ftfy] < captions.json > ids.json
      captions.json: a JSON array of strings. Output: a JSON array, per caption the ids without special tokens,
      or with --context-length N the padded/truncated N ids with <|startoftext|>/<|endoftext|>.
  PYTHONPATH=<ftfy> clip_tokenizer_ref.py --vocab PATH --emit-ftfy-golden < captions.json > golden.json
      per caption: ftfy.fix_text's output with and without its mojibake repair (fix_encoding), and the ids
      with real ftfy: test/text/fixtures/ftfy-golden.json, for tests on machines without ftfy.
  PYTHONPATH=<ftfy> clip_tokenizer_ref.py --emit-ftfy-tables > src/text/tokenizer-ftfy-tables.ts
      writes the character tables of ftfy's character-local fixes, found by running each fixer on every code
      point (needs ftfy importable; only for regenerating that file).
  clip_tokenizer_ref.py --emit-html-tables > src/text/tokenizer-html-entities.ts
      writes the HTML5 named character references and the numeric-reference fix-up tables (WHATWG's, as
      Python's html module holds them) as a TypeScript module.
"""
import argparse
import gzip
import html
import html.entities
import json
import re
import sys

import regex

PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
SOT, EOT = '<|startoftext|>', '<|endoftext|>'


def byte_table():
    """Byte -> printable character: printable Latin-1 bytes stand for themselves, the rest move to 256+n."""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars)))


class Reference:
    def __init__(self, vocab_path, use_ftfy=False):
        self.byte_char = byte_table()
        with gzip.open(vocab_path) as f:
            lines = f.read().decode('utf-8').split('\n')
        merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
        vocab = list(self.byte_char.values())
        vocab += [v + '</w>' for v in vocab]
        vocab += [''.join(m) for m in merges]
        vocab += [SOT, EOT]
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}
        self.cache = {SOT: SOT, EOT: EOT}
        self.fix_text = None
        if use_ftfy:
            import ftfy  # noqa: only for measuring the difference ftfy makes
            self.fix_text = ftfy.fix_text

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + '</w>']
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.rank.get(p, float('inf')))
            if best not in self.rank:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        out = ' '.join(word)
        self.cache[token] = out
        return out

    def clean(self, text):
        if self.fix_text:
            text = self.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        return re.sub(r'\s+', ' ', text).strip()

    def encode(self, text):
        ids = []
        for token in regex.findall(PATTERN, self.clean(text).lower()):
            token = ''.join(self.byte_char[b] for b in token.encode('utf-8'))
            ids.extend(self.ids[t] for t in self.bpe(token).split(' '))
        return ids

    def tokenize(self, text, context_length):
        ids = [self.ids[SOT]] + self.encode(text) + [self.ids[EOT]]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = self.ids[EOT]
        return ids + [0] * (context_length - len(ids))


def emit_html_tables():
    named = html.entities.html5
    # The fix-up tables are private to Python's html module; they transcribe the WHATWG numeric reference rules.
    invalid_charrefs = html._invalid_charrefs
    invalid_codepoints = sorted(html._invalid_codepoints)
    out = sys.stdout
    out.write('// Generated by scripts/clip_tokenizer_ref.py --emit-html-tables from Python ' + sys.version.split()[0] + "'s html module:\n")
    out.write('// the WHATWG HTML named character references and numeric-reference rules. Do not edit by hand.\n\n')
    out.write('/** Entity name (with its ";" where the standard has one) → replacement text. */\n')
    out.write('export const NAMED_REFERENCES: ReadonlyMap<string, string> = new Map<string, string>(' + json.dumps(sorted(named.items()), ensure_ascii=True) + ');\n\n')
    out.write('/** Numeric references the standard maps elsewhere (e.g. &#128; → €, as windows-1252). */\n')
    out.write('export const NUMERIC_FIXUPS: ReadonlyMap<number, string> = new Map<number, string>(' + json.dumps(sorted(invalid_charrefs.items()), ensure_ascii=True) + ');\n\n')
    out.write('/** Numeric references that decode to nothing. */\n')
    out.write('export const DROPPED_CODEPOINTS: ReadonlySet<number> = new Set<number>(' + json.dumps(invalid_codepoints) + ');\n')


def emit_ftfy_tables():
    import ftfy
    import ftfy.fixes as fixes

    def probe(fn):
        table = {}
        for c in range(0x110000):
            if 0xD800 <= c <= 0xDFFF:
                continue
            fixed = fn(chr(c))
            if fixed != chr(c):
                table[c] = fixed
        return table

    # ftfy's own unescape: only ';'-terminated names, plus upper-cased names of all-lower-case entities where
    # the upper-cased spelling is not itself an entity (P&EACUTE;REZ -> PÉREZ), mapped to the upper-cased text.
    entities = {}
    for name, char in html.entities.html5.items():
        if name.endswith(';'):
            entities['&' + name] = char
            if name == name.lower():
                upper = '&' + name.upper()
                if html.unescape(upper) == upper:
                    entities[upper] = char.upper()
    out = sys.stdout
    out.write('// Generated by scripts/clip_tokenizer_ref.py --emit-ftfy-tables from ftfy ' + ftfy.__version__ + ': each\n')
    out.write("// character-local fixer of ftfy.fix_text run on every code point. Do not edit by hand.\n\n")
    for const, fn, doc in [
        ('C1_CONTROLS', fixes.fix_c1_controls, 'fix_c1_controls: C1 controls read as Windows-1252.'),
        ('LATIN_LIGATURES', fixes.fix_latin_ligatures, 'fix_latin_ligatures.'),
        ('CHARACTER_WIDTH', fixes.fix_character_width, 'fix_character_width: full/half-width forms to normal width.'),
        ('CURLY_QUOTES', fixes.uncurl_quotes, 'uncurl_quotes.'),
        ('CONTROL_CHARACTERS', fixes.remove_control_chars, 'remove_control_chars: code points removed.'),
    ]:
        table = probe(fn)
        out.write(f'/** {doc} */\n')
        out.write(f'export const {const}: ReadonlyMap<number, string> = new Map<number, string>(' + json.dumps(sorted(table.items()), ensure_ascii=True) + ');\n\n')
    out.write("/** ftfy's unescape_html: '&name;' (and some upper-cased names) -> text. */\n")
    out.write('export const FTFY_ENTITIES: ReadonlyMap<string, string> = new Map<string, string>(' + json.dumps(sorted(entities.items()), ensure_ascii=True) + ');\n')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--vocab')
    p.add_argument('--context-length', type=int)
    p.add_argument('--ftfy', action='store_true')
    p.add_argument('--emit-html-tables', action='store_true')
    p.add_argument('--emit-ftfy-tables', action='store_true')
    p.add_argument('--emit-ftfy-golden', action='store_true')
    args = p.parse_args()
    if args.emit_ftfy_tables:
        return emit_ftfy_tables()
    if args.emit_ftfy_golden:
        import ftfy
        ref = Reference(args.vocab, True)
        captions = json.loads(sys.stdin.buffer.read().decode('utf-8'))
        cases = [{'text': c, 'fixed': ftfy.fix_text(c), 'fixed_without_fix_encoding': ftfy.fix_text(c, fix_encoding=False),
                  'ids': ref.encode(c)} for c in captions]
        lines = ',\n'.join(json.dumps(c, ensure_ascii=True) for c in cases)
        sys.stdout.write('{"ftfy": "%s", "cases": [\n%s\n]}\n' % (ftfy.__version__, lines))
        return None
    if args.emit_html_tables:
        return emit_html_tables()
    ref = Reference(args.vocab, args.ftfy)
    captions = json.loads(sys.stdin.buffer.read().decode('utf-8', 'surrogatepass'))
    if args.context_length:
        out = [ref.tokenize(c, args.context_length) for c in captions]
    else:
        out = [ref.encode(c) for c in captions]
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    sys.exit(main())
