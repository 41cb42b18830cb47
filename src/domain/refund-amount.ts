/**
 * What Taobao refunds the buyer for unused or expired units: units x unit price x ratio - 1 yuan (the
 * code fee), never below 0. Integer fen throughout; the ratio is in basis points (10000 = 100%).
 */
import { ok, rejected, type Result } from './result';

/** The 1-yuan code fee kept back from every such refund. */
export const CODE_FEE_FEN = 100;
export const FULL_RATIO_BASIS_POINTS = 10000;

export type RefundAmountRejection =
  | 'INVALID_UNITS'
  | 'INVALID_UNIT_PRICE'
  | 'RATIO_OUT_OF_RANGE'
  | 'RATIO_BELOW_CATEGORY_MINIMUM'
  | 'AMOUNT_TOO_LARGE';

export interface RefundAmountOptions {
  /** The category's minimum refund ratio in basis points; a lower ratio is refused. */
  readonly categoryMinimumBasisPoints?: number;
}

export function buyerRefundFen(
  units: number,
  unitPriceFen: number,
  ratioBasisPoints: number,
  options: RefundAmountOptions = {},
): Result<number, RefundAmountRejection> {
  if (!Number.isSafeInteger(units) || units < 0) {
    return rejected('INVALID_UNITS', `units must be a non-negative integer, got ${units}`);
  }
  if (!Number.isSafeInteger(unitPriceFen) || unitPriceFen < 0) {
    return rejected('INVALID_UNIT_PRICE', `unit price must be non-negative integer fen, got ${unitPriceFen}`);
  }
  if (!Number.isSafeInteger(ratioBasisPoints) || ratioBasisPoints < 0 || ratioBasisPoints > FULL_RATIO_BASIS_POINTS) {
    return rejected('RATIO_OUT_OF_RANGE', `ratio must be 0..10000 basis points, got ${ratioBasisPoints}`);
  }
  const minimum = options.categoryMinimumBasisPoints;
  if (minimum !== undefined && ratioBasisPoints < minimum) {
    return rejected('RATIO_BELOW_CATEGORY_MINIMUM', `ratio ${ratioBasisPoints} is below the category minimum ${minimum}`, {
      minimum,
    });
  }
  // BigInt so a large order cannot lose fen to floating point before the floor.
  const gross = (BigInt(units) * BigInt(unitPriceFen) * BigInt(ratioBasisPoints)) / BigInt(FULL_RATIO_BASIS_POINTS);
  const net = gross - BigInt(CODE_FEE_FEN);
  if (net <= 0n) return ok(0);
  if (net > BigInt(Number.MAX_SAFE_INTEGER)) {
    return rejected('AMOUNT_TOO_LARGE', 'refund amount exceeds what can be kept in integer fen');
  }
  return ok(Number(net));
}
