/**
 * Taobao speaks wall-clock time in China (GMT+8, no daylight saving) as `yyyy-MM-dd HH:mm:ss`.
 * These helpers convert between that text and epoch ms without depending on the host's time zone.
 */

const GMT8_OFFSET_MS = 8 * 60 * 60 * 1000;
const TAOBAO_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/** Epoch ms of a `yyyy-MM-dd HH:mm:ss` GMT+8 text, or undefined if the text is not a real instant. */
export function parseTaobaoTime(text: string): number | undefined {
  const m = TAOBAO_TIME.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls 2024-02-30 over to March: a round trip catches impossible days.
  const back = new Date(utc);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return undefined;
  return utc - GMT8_OFFSET_MS;
}

/** `yyyy-MM-dd HH:mm:ss` in GMT+8 for an epoch ms instant (sub-second part dropped). */
export function formatTaobaoTime(epochMs: number): string {
  const t = new Date(Math.floor(epochMs / 1000) * 1000 + GMT8_OFFSET_MS);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${p(t.getUTCFullYear(), 4)}-${p(t.getUTCMonth() + 1)}-${p(t.getUTCDate())} ` +
    `${p(t.getUTCHours())}:${p(t.getUTCMinutes())}:${p(t.getUTCSeconds())}`
  );
}

/** The GMT+8 calendar day (`yyyy-MM-dd`) an instant falls on: Taobao's business day. */
export function taobaoDay(epochMs: number): string {
  return formatTaobaoTime(epochMs).slice(0, 10);
}
