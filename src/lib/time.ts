const MS_PER_DAY = 86_400_000;
/** 10000-01-01T00:00:00Z: from there on `toISOString` writes a six-digit signed year. */
const YEAR_10000 = 253_402_300_800_000;
/** '00'…'99' and '000'…'999', so formatting a time allocates only its result. */
const TWO = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, '0'));
const THREE = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));

/** `YYYY-MM-DDT` of a day since 1970-01-01 (proleptic Gregorian, eras of 400 years from 0000-03-01). */
function datePart(days: number): string {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const shiftedMonth = Math.floor((5 * dayOfYear + 2) / 153); // 0 = March
  const day = dayOfYear - Math.floor((153 * shiftedMonth + 2) / 5) + 1;
  const month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  return `${String(year).padStart(4, '0')}-${TWO[month]}-${TWO[day]}T`;
}

// The day last formatted: the objects of a listing mostly share days.
let lastDays = -1;
let lastDatePart = '';

/**
 * Wire times: ISO-8601 in UTC with milliseconds (`Z` is the offset), exactly as `toISOString`
 * writes them, without a `Date` per time: listings format two per object (docs/BENCHMARKS.md,
 * "Listing"). test/lib/time.test.ts checks the two agree.
 */
export function iso(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= YEAR_10000) return new Date(ms).toISOString();
  const days = Math.floor(ms / MS_PER_DAY);
  if (days !== lastDays) {
    lastDatePart = datePart(days);
    lastDays = days;
  }
  let rest = ms - days * MS_PER_DAY;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1000);
  return `${lastDatePart}${TWO[hours]}:${TWO[minutes]}:${TWO[seconds]}.${THREE[rest - seconds * 1000]}Z`;
}

export const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));
