import { InitialSchema1763900000000 } from './1763900000000-initial-schema';
import { ProductMappings1795443247220 } from './1795443247220-product-mappings';
import { GateDevices1795443304009 } from './1795443304009-gate-devices';
import { OutboxPending1795460000000 } from './1795460000000-outbox-pending';
import { WorkItemsOpenByOrder1795470000000 } from './1795470000000-work-items-open-by-order';

/**
 * Every migration, oldest first. Imported as classes (not a file glob) so the same list works under tsx,
 * compiled JS and a bundle.
 */
export const MIGRATIONS = [InitialSchema1763900000000, ProductMappings1795443247220, GateDevices1795443304009, OutboxPending1795460000000, WorkItemsOpenByOrder1795470000000];
