/**
 * Seeded randomness for the demo data: every draw is a pure function of (seed, purpose), so the same options give
 * the same shards byte for byte, and changing one choice (e.g. the noise rate) does not reshuffle the others.
 */
import { createHash } from 'node:crypto';

/** A 32-bit seed derived from a seed and the name of what it is for. */
export function deriveSeed(seed: number, purpose: string): number {
  return createHash('sha256').update(`${seed}\0${purpose}`).digest().readUInt32LE(0);
}

/** mulberry32: small, fast, and good enough for shuffles and coin flips (not for cryptography). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generator for one purpose under one seed. */
export function rngFor(seed: number, purpose: string): () => number {
  return mulberry32(deriveSeed(seed, purpose));
}

/** Fisher–Yates in place. */
export function shuffleInPlace<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

/** An integer in [0, n). */
export function randInt(rand: () => number, n: number): number {
  return Math.floor(rand() * n);
}
