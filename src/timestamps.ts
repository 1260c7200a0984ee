let cachedSecond = Number.NaN;
/** `YYYY-MM-DDTHH:MM:SS.` of cachedSecond. */
let cachedPrefix = '';

/**
 * `new Date(ms).toISOString()` for a whole number of milliseconds (as Date.now() gives), at a fraction of its cost:
 * calls that start within the same second share the formatted date and time, and only the milliseconds are appended.
 */
export function isoTimestamp(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const iso = new Date(second * 1000).toISOString();
    // Outside years 0000-9999 the format has a sign and more digits: not worth a fast path.
    if (iso.length !== 24) return new Date(ms).toISOString();
    cachedSecond = second;
    cachedPrefix = iso.slice(0, 20);
  }
  const milli = ms - second * 1000;
  if (!Number.isInteger(milli)) return new Date(ms).toISOString();
  return `${cachedPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

let cachedDay = Number.NaN;
let cachedDate = '';

/** `YYYY-MM-DD` of an instant (UTC), which compares with a price schedule's dates as the instant does. */
export function utcDay(ms: number): string {
  const day = Math.floor(ms / 86_400_000);
  if (day !== cachedDay) {
    cachedDay = day;
    cachedDate = new Date(ms).toISOString().slice(0, 10);
  }
  return cachedDate;
}
