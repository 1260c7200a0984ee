import { NANO_PER_USD } from '../limits/store.js';

/**
 * Nano-dollars as a decimal USD amount, rounded to `decimals` (at most 9) and without trailing zeros past the cents:
 * 1234500000 → "1.2345", 2000000000 → "2.00". Worked in integers, so no float rounding shows.
 */
export function formatUsd(nano: number, decimals: number): string {
  const unit = 10 ** (9 - decimals);
  const scaled = Math.round(Math.abs(nano) / unit);
  const perUsd = NANO_PER_USD / unit;
  const whole = Math.floor(scaled / perUsd);
  const fraction = String(scaled % perUsd).padStart(decimals, '0').replace(/0+$/, '').padEnd(2, '0');
  return `${nano < 0 && scaled !== 0 ? '-' : ''}${whole}.${fraction}`;
}
