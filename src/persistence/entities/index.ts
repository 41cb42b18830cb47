import { InboundMessageEntity } from './inbound-message.entity';
import { OperatorExceptionEntity } from './operator-exception.entity';
import { OrderEntity } from './order.entity';
import { OutboxEventEntity, OutboxPendingEntity, OutboxRelayLeaseEntity } from './outbox-event.entity';
import { ProductMappingEntity } from './product-mapping.entity';
import { RefundRequestEntity } from './refund-request.entity';
import { VoucherEntity } from './voucher.entity';
import { WorkItemEntity } from './work-item.entity';
import { WriteOffEntity } from './write-off.entity';
import { GateDeviceEntity } from '../../gates/gate-device.entity';
import { GateOfflineAdmissionEntity } from '../../gates/gate-offline-admission.entity';

export * from './column-types';
export * from './inbound-message.entity';
export * from './operator-exception.entity';
export * from './order.entity';
export * from './outbox-event.entity';
export * from './product-mapping.entity';
export * from './refund-request.entity';
export * from './voucher.entity';
export * from './work-item.entity';
export * from './write-off.entity';
export * from '../../gates/gate-device.entity';
export * from '../../gates/gate-offline-admission.entity';

/** Every entity the data source knows; the migrations create exactly these tables. */
export const ALL_ENTITIES = [
  OrderEntity,
  VoucherEntity,
  WriteOffEntity,
  RefundRequestEntity,
  InboundMessageEntity,
  OutboxEventEntity,
  OutboxPendingEntity,
  OutboxRelayLeaseEntity,
  WorkItemEntity,
  OperatorExceptionEntity,
  ProductMappingEntity,
  GateDeviceEntity,
  GateOfflineAdmissionEntity,
];
