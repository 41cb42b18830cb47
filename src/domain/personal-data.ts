/**
 * Masking of personal data (mobile numbers, ID-card numbers) so it never reaches a log or an error
 * message in clear. Pure string functions; the logger runs `redactPersonalData` over what it writes.
 */

function keepEnds(value: string, head: number, tail: number): string {
  // Too short to keep anything without revealing most of it: mask all.
  if (value.length <= head + tail) return '*'.repeat(value.length);
  return value.slice(0, head) + '*'.repeat(value.length - head - tail) + value.slice(value.length - tail);
}

/** '13812345678' -> '138****5678'. */
export function maskMobile(mobile: string): string {
  return keepEnds(mobile, 3, 4);
}

/** Keeps the first 3 and last 4 characters: '110101199003071234' -> '110***********1234'. */
export function maskIdCard(idCard: string): string {
  return keepEnds(idCard, 3, 4);
}

// Not inside a longer run of digits (order numbers, timestamps stay readable).
const ID_CARD_18 = /(?<!\d)\d{17}[\dXx](?!\d)/g;
const ID_CARD_15 = /(?<!\d)\d{15}(?!\d)/g;
// A mainland mobile, optionally written +86 / 0086 / 86 and with - or space between 3-4-4 groups.
const MOBILE = /(?<!\d)((?:\+|00)?86[- ]?)?(1[3-9]\d)([- ]?)(\d{4})([- ]?)(\d{4})(?!\d)/g;

/** Replaces every ID-card number and mainland mobile found in `text` with its mask. */
export function redactPersonalData(text: string): string {
  return text
    .replace(ID_CARD_18, (id) => maskIdCard(id))
    .replace(ID_CARD_15, (id) => maskIdCard(id))
    .replace(MOBILE, (_m, prefix: string | undefined, head: string, sep1: string, _mid: string, sep2: string, tail: string) =>
      `${prefix ?? ''}${head}${sep1}****${sep2}${tail}`,
    );
}
