/**
 * Lianhe status codes are only partly known (external-apis.md §3.4: the tables were not retrieved), so
 * the mapping onto neutral supplier statuses is configuration: a default table inferred from the
 * documented examples, which an instance's config can extend or override. A code that is not in the
 * table is an UnknownSupplierStateError for operators — never a guess.
 */
import { z } from 'zod';
import { NEUTRAL_SUPPLIER_STATUSES, type NeutralSupplierStatus } from '../supplier-adapter';
import { UnknownSupplierStateError } from '../supplier-errors';

/**
 * Inferred from the examples: 2 created, 4 paid/issued, 5 pay failed, 6 refund success, 7 refund
 * failed/rejected, 8 partially used, 9 consumed. 3 is deliberately absent: the docs show it both as
 * "create failed" and as newOrder's success example.
 */
export const DEFAULT_LIANHE_ORDER_STATUS: Readonly<Record<string, NeutralSupplierStatus>> = {
  '2': 'created',
  '4': 'issued',
  '5': 'issue_failed',
  '6': 'refunded',
  '7': 'refund_rejected',
  '8': 'partially_used',
  '9': 'used',
};

const neutral = z.enum(NEUTRAL_SUPPLIER_STATUSES as [NeutralSupplierStatus, ...NeutralSupplierStatus[]]);

export const lianheStatusMappingSchema = z.object({
  /** orderStatus code -> neutral status; merged over the default table (null removes a default). */
  orderStatus: z.record(z.string().regex(/^-?\d+$/), neutral.nullable()).default({}),
});
export type LianheStatusMappingConfig = z.input<typeof lianheStatusMappingSchema>;

export class LianheStatusMapping {
  private readonly orderStatus: ReadonlyMap<string, NeutralSupplierStatus>;

  constructor(overrides: z.output<typeof lianheStatusMappingSchema> = { orderStatus: {} }) {
    const table = new Map<string, NeutralSupplierStatus>(Object.entries(DEFAULT_LIANHE_ORDER_STATUS));
    for (const [code, status] of Object.entries(overrides.orderStatus)) {
      if (status === null) table.delete(code);
      else table.set(code, status);
    }
    this.orderStatus = table;
  }

  /** The whole table (default + config), for the state mapping and listings. */
  codes(): Record<string, NeutralSupplierStatus> {
    return Object.fromEntries(this.orderStatus);
  }

  /** The neutral status, or undefined when the table does not know the code. */
  lookup(orderStatus: string): NeutralSupplierStatus | undefined {
    return this.orderStatus.get(orderStatus);
  }

  /** The neutral status, or a typed UnknownSupplierStateError naming where it was seen. */
  require(orderStatus: string, context: string): NeutralSupplierStatus {
    const status = this.lookup(orderStatus);
    if (status === undefined) throw new UnknownSupplierStateError('lianhe', 'orderStatus', orderStatus, context);
    return status;
  }
}
