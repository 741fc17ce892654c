/**
 * The emoji catalogue behind the demo data: the emoji of the npm packages `emoji-datasource-{google,twitter,
 * apple,facebook}` (data MIT; images under their makers' terms: Google's Noto Apache 2.0, Twitter's Twemoji
 * CC BY 4.0, Apple's © Apple and not licensed for commercial use, Facebook's without a clear licence) and
 * `openmoji` (CC BY-SA 4.0), joined on the Unicode code point sequence. Names and keywords are the
 * Unicode CLDR annotations that OpenMoji ships (lower case, e.g. "grinning face with big eyes"); categories come
 * from emoji-datasource. Skin-tone variants and components are left out: they differ from their base emoji by a
 * swatch, which would make a swapped caption undetectable by construction.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MimicError, errorMessage } from '../errors.js';

export const EMOJI_STYLES = ['google', 'twitter', 'apple', 'facebook', 'openmoji'] as const;
export type EmojiStyle = (typeof EMOJI_STYLES)[number];

/** Where one style's images come from (npm package names, so that a fresh `npm ci` has them). */
export const STYLE_PACKAGES: Record<EmojiStyle, string> = {
  google: 'emoji-datasource-google',
  twitter: 'emoji-datasource-twitter',
  apple: 'emoji-datasource-apple',
  facebook: 'emoji-datasource-facebook',
  openmoji: 'openmoji',
};

export interface EmojiImageSource {
  /** Absolute path of the image file. */
  file: string;
  /** Provenance recorded as the sample's url: `npm:<package>@<version>/<path in the package>`. */
  url: string;
  format: 'png' | 'svg';
}

export interface EmojiEntry {
  /** Upper-case code points joined by '-', as both packages spell them (e.g. 1F603, 1F1EA-1F1EC). */
  hexcode: string;
  /** CLDR short name, e.g. "grinning face with big eyes", "flag: Egypt". */
  name: string;
  /** CLDR keywords (may be empty). */
  keywords: string[];
  /** emoji-datasource's category, lower case (e.g. "smileys & emotion"). */
  category: string;
  /** One image per style that has this emoji. */
  images: Partial<Record<EmojiStyle, EmojiImageSource>>;
}

export interface CatalogOptions {
  /** Folder to resolve the npm packages from (default: this package's own node_modules). */
  resolveFrom?: string;
  /**
   * Styles whose images are wanted (default: all). Only their packages are needed, plus emoji-datasource-google
   * (the emoji list) and openmoji (the names): the others may be missing.
   */
  styles?: readonly EmojiStyle[];
}

interface DatasourceRow {
  unified: string;
  /** The sequence without its variation selector (U+FE0F), which is how OpenMoji names some emoji. */
  non_qualified: string | null;
  image: string;
  category: string;
  sort_order: number;
  has_img_google?: boolean;
  has_img_twitter?: boolean;
  has_img_apple?: boolean;
  has_img_facebook?: boolean;
}

interface OpenMojiRow {
  hexcode: string;
  annotation: string;
  tags: string;
  skintone: string | number;
}

function packageRoot(name: string, opts: CatalogOptions): { root: string; version: string } {
  const req = createRequire(opts.resolveFrom ? join(opts.resolveFrom, 'noop.js') : import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = req.resolve(`${name}/package.json`);
  } catch (e) {
    throw new MimicError('E_USAGE', `the demo data needs the npm package ${name}, which is not installed (${errorMessage(e)})`, {
      hint: `run \`npm ci\` in a clone of grad-mimic (the emoji packages are devDependencies), or \`npm install ${name}\``,
    });
  }
  const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  return { root: dirname(pkgJson), version };
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new MimicError('E_IO', `cannot read ${file}: ${errorMessage(e)}`, {
      file,
      hint: 'reinstall the emoji packages (npm ci)',
    });
  }
}

/** Every base emoji with its name, keywords, category and the images each style has, in Unicode's order. */
export function loadEmojiCatalog(opts: CatalogOptions = {}): EmojiEntry[] {
  const google = packageRoot(STYLE_PACKAGES.google, opts);
  const rows = readJson<DatasourceRow[]>(join(google.root, 'emoji.json'));
  const om = packageRoot(STYLE_PACKAGES.openmoji, opts);
  const annotations = new Map<string, OpenMojiRow>();
  for (const r of readJson<OpenMojiRow[]>(join(om.root, 'data', 'openmoji.json'))) annotations.set(r.hexcode, r);
  const wanted = new Set<EmojiStyle>(opts.styles ?? EMOJI_STYLES);
  const roots = new Map<EmojiStyle, { root: string; version: string }>([['google', google], ['openmoji', om]]);
  for (const style of ['twitter', 'apple', 'facebook'] as const) {
    if (wanted.has(style)) roots.set(style, packageRoot(STYLE_PACKAGES[style], opts));
  }

  const entries: EmojiEntry[] = [];
  for (const r of [...rows].sort((a, b) => a.sort_order - b.sort_order)) {
    if (r.category === 'Component') continue;
    const a = annotations.get(r.unified) ?? (r.non_qualified ? annotations.get(r.non_qualified) : undefined);
    // Every base emoji of emoji-datasource 16 has an OpenMoji 17 annotation; one that does not has no CLDR name.
    if (!a || !a.annotation) continue;
    const images: EntryImages = {};
    for (const style of ['google', 'twitter', 'apple', 'facebook'] as const) {
      if (!wanted.has(style) || !r[`has_img_${style}`]) continue;
      const { root, version } = roots.get(style)!;
      const rel = `img/${style}/64/${r.image}`;
      images[style] = { file: join(root, rel), url: `npm:${STYLE_PACKAGES[style]}@${version}/${rel}`, format: 'png' };
    }
    if (wanted.has('openmoji')) {
      const rel = `color/svg/${a.hexcode}.svg`;
      images.openmoji = { file: join(om.root, rel), url: `npm:openmoji@${om.version}/${rel}`, format: 'svg' };
    }
    entries.push({
      hexcode: r.unified,
      name: a.annotation.trim(),
      keywords: a.tags.split(',').map((k) => k.trim()).filter((k) => k.length > 0),
      category: r.category.toLowerCase(),
      images,
    });
  }
  if (entries.length === 0) {
    throw new MimicError('E_IO', `no emoji found in ${google.root}/emoji.json`, { hint: 'reinstall the emoji packages (npm ci)' });
  }
  return entries;
}

type EntryImages = Partial<Record<EmojiStyle, EmojiImageSource>>;
