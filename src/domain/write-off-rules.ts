/**
 * Reversing a write-off (冲正): Taobao accepts `reverse` only for the consume's serial number, with the
 * same count, within two hours of the consume.
 */
import { ok, rejected, type Result } from './result';

/** Two hours, inclusive: a reversal at exactly 2h00m00.000s after admission is still allowed. */
export const REVERSE_WINDOW_MS = 2 * 60 * 60 * 1000;

/** One admission recorded against an order (one Taobao consume). */
export interface WriteOff {
  /** Our unique consume serial_num, quoted back to Taobao on reverse. */
  readonly serial: string;
  readonly count: number;
  readonly admittedAt: number;
  /** When it was reversed, or null while it stands. */
  readonly reversedAt: number | null;
}

export type WriteOffRejection = 'ALREADY_REVERSED' | 'REVERSE_WINDOW_PASSED' | 'COUNT_MISMATCH';

/** The last instant at which a write-off can still be reversed. */
export function reverseDeadline(writeOff: Pick<WriteOff, 'admittedAt'>): number {
  return writeOff.admittedAt + REVERSE_WINDOW_MS;
}

/**
 * May `writeOff` be reversed now for `count` units? Checked in this order: already reversed, window
 * passed, count differs. An instant before the admission (gate clock skew) counts as inside the window.
 */
export function canReverseWriteOff(writeOff: WriteOff, count: number, now: number): Result<true, WriteOffRejection> {
  if (writeOff.reversedAt !== null) {
    return rejected('ALREADY_REVERSED', `write-off ${writeOff.serial} was already reversed`);
  }
  if (now - writeOff.admittedAt > REVERSE_WINDOW_MS) {
    return rejected('REVERSE_WINDOW_PASSED', `write-off ${writeOff.serial} is older than two hours`, {
      deadline: reverseDeadline(writeOff),
    });
  }
  if (count !== writeOff.count) {
    return rejected('COUNT_MISMATCH', `write-off ${writeOff.serial} was for ${writeOff.count}, not ${count}`, {
      expected: writeOff.count,
    });
  }
  return ok(true);
}
