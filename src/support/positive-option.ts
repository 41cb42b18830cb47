/** An option that must be a positive finite number: the value given, else the default (absent, zero, NaN, negative). */
export function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}
