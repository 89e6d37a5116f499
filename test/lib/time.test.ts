import { describe, expect, it } from 'vitest';
import { iso } from '../../src/lib/time.ts';

describe('iso', () => {
  it('writes exactly what toISOString writes', () => {
    const edges = [0, 1, 999, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999, 4_107_542_400_000, 253_402_300_799_999];
    // Seeded so a failure can be replayed: a linear congruential walk over year 1970 to 9999.
    let seed = 12345;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
    const samples = Array.from({ length: 50_000 }, () => Math.floor(random() * 253_402_300_800_000));
    for (const ms of [...edges, ...samples]) expect(iso(ms), String(ms)).toBe(new Date(ms).toISOString());
  });

  it('falls back to toISOString outside four-digit years and for fractions', () => {
    for (const ms of [-1, -62_198_755_200_000, 253_402_300_800_000, 1.5]) expect(iso(ms)).toBe(new Date(ms).toISOString());
  });
});
