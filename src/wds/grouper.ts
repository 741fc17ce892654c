/**
 * Tar members to samples, by the rules of Python's webdataset (`tariterators.py`: `tar_file_iterator`,
 * `base_plus_ext`, `group_by_keys`), so that a shard has the same samples, in the same order, with the same row
 * indices as a webdataset pipeline sees:
 * - non-regular entries (folders, links, devices) are skipped, and so are top-level `__*__` names;
 * - key = the path up to the first `.` of the basename, extension = the rest, lower-cased; a regular member
 *   without such a split (no dot in its basename) is skipped without ending the current sample;
 * - a run of adjacent members with one key is a sample; a key that comes back later starts a new sample.
 * Where webdataset raises (a repeated extension in a sample) this stage marks the sample instead and goes on, and
 * it flags what webdataset accepts silently but a writer must not reproduce (absolute or `..` member paths).
 */
import { log } from '../log.js';
import type { Sample, SampleMember, SampleProblem, ShardReadStats } from './types.js';

export type MemberClass =
  | { kind: 'nonregular' }
  | { kind: 'meta' }
  | { kind: 'noext' }
  | { kind: 'member'; key: string; ext: string };

// webdataset's base_plus_ext regex, r"^((?:.*/|)[^.]+)[.]([^/]*)$", with Python's `.` (anything but \n).
const BASE_PLUS_EXT = /^((?:[^\n]*\/|)[^.]+)[.]([^/]*)$/;
// webdataset's skip_meta default, r"__[^/]*__($|/)" applied with re.match (anchored at the start).
const SKIP_META = /^__[^/]*__(?:\n?$|\/)/;

/** Split a member path into webdataset's key and (not yet lower-cased) extension, or undefined. */
export function basePlusExt(name: string): { key: string; ext: string } | undefined {
  const m = BASE_PLUS_EXT.exec(name);
  return m ? { key: m[1], ext: m[2] } : undefined;
}

/** What webdataset does with a tar entry of this name and kind. */
export function classifyMember(name: string, regular: boolean): MemberClass {
  if (!regular) return { kind: 'nonregular' };
  if (!name.includes('/') && name.startsWith('__') && name.endsWith('__')) return { kind: 'meta' };
  if (SKIP_META.test(name)) return { kind: 'meta' };
  const split = basePlusExt(name);
  if (!split) return { kind: 'noext' };
  return { kind: 'member', key: split.key, ext: split.ext.toLowerCase() };
}

/** An absolute path or one with a `..` segment: harmless to read, dangerous to extract or write out as is. */
export function isUnsafeMemberName(name: string): boolean {
  return name.startsWith('/') || name.split('/').includes('..');
}

/** Names webdataset keeps in every sample dict: a member with such an extension collides with them. */
const RESERVED_EXTENSIONS = new Set(['__key__', '__url__']);

export interface GroupedMember extends SampleMember {
  key: string;
  /** The bytes, when they were asked for. */
  data?: Buffer;
}

/** Builds samples from classified members, one shard at a time; feed members in tar order. */
export class SampleGrouper {
  private current: Sample | null = null;
  private currentExts = new Set<string>();
  private readonly seen = new Map<string, number>();
  private row = 0;

  constructor(
    private readonly shard: string,
    private readonly stats: Pick<ShardReadStats, 'repeatedKeys'>,
  ) {}

  /** Add a member; returns the previous sample when this member starts a new one. */
  add(m: GroupedMember): Sample | undefined {
    let done: Sample | undefined;
    if (this.current === null || this.current.key !== m.key) {
      done = this.current ?? undefined;
      this.start(m);
    }
    const sample = this.current!;
    const member: SampleMember = { name: m.name, ext: m.ext, offset: m.offset, size: m.size };
    sample.members.push(member);
    if (this.currentExts.has(m.ext) || RESERVED_EXTENSIONS.has(m.ext)) {
      const why = RESERVED_EXTENSIONS.has(m.ext) ? 'an extension that webdataset reserves' : 'a repeated extension';
      addProblem(sample, {
        status: 'duplicate_extension',
        message: `member "${m.name}" at byte ${m.offset} has ${why} ("${m.ext}") in sample "${m.key}"; only the first one is kept`,
      });
    } else {
      this.currentExts.add(m.ext);
      if (m.data !== undefined) sample.files.set(m.ext, m.data);
    }
    if (isUnsafeMemberName(m.name)) {
      addProblem(sample, {
        status: 'bad_member_name',
        message: `member "${m.name}" at byte ${m.offset} has an absolute path or a ".." segment`,
      });
    }
    return done;
  }

  /** The key of the sample being built, if any. */
  get currentKey(): string | undefined {
    return this.current?.key;
  }

  /** The last sample, at the end of the shard; `problem` marks it when the shard broke while it was read. */
  finish(problem?: SampleProblem): Sample | undefined {
    const last = this.current ?? undefined;
    this.current = null;
    if (last && problem) addProblem(last, problem);
    return last;
  }

  private start(m: GroupedMember): void {
    const firstRow = this.seen.get(m.key);
    if (firstRow !== undefined) {
      this.stats.repeatedKeys++;
      log().warn(
        { shard: this.shard, key: m.key, row: this.row, firstRow, offset: m.offset },
        'a sample key reappears later in the shard; it starts a new sample (rows are told apart by index)',
      );
    } else {
      this.seen.set(m.key, this.row);
    }
    this.current = { shard: this.shard, row: this.row++, key: m.key, files: new Map(), offset: m.offset, members: [] };
    this.currentExts = new Set();
  }
}

function addProblem(sample: Sample, problem: SampleProblem): void {
  if (!sample.problem) sample.problem = { ...problem };
  else if (sample.problem.message.length < 2000) sample.problem.message += `; ${problem.message}`;
}
