import type { ValueTransformer } from 'typeorm';

/**
 * mysql2 hands BIGINT back as a string (to keep precision past 2^53); SQLite as a number. Every bigint we
 * store is an epoch-ms instant or an amount in fen, far below 2^53, so both are read as a plain JS number.
 */
export const bigintAsNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null | undefined) => (value === null || value === undefined ? value : Number(value)),
};

/** An instant (epoch ms) or money (fen): BIGINT, read back as a number. */
export const bigintColumn = { type: 'bigint', transformer: bigintAsNumber } as const;

/** Length of our own generated string ids ('o_…', 'wo_…', 'rf_…'). */
export const ID_LENGTH = 40;
