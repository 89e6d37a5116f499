/** Wire times: ISO-8601 in UTC with milliseconds (`Z` is the offset). */
export const iso = (ms: number): string => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));
