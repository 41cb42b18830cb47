/**
 * Raising something for a person to look at: an operator_exceptions row plus an `exception.raised` event in
 * the same transaction. Details are redacted of personal data.
 */
import type { EntityManager } from 'typeorm';
import type { Clock } from '../domain/model';
import { redactPersonalData } from '../domain/personal-data';
import { appendEvent, exceptionRaised } from '../outbox/outbox';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';

export async function raiseOperatorException(
  em: EntityManager,
  input: { orderId: string | null; kind: string; detail: string },
  clock: Clock,
): Promise<void> {
  const now = clock.now();
  const detail = redactPersonalData(input.detail);
  await em.insert(OperatorExceptionEntity, { kind: input.kind, orderId: input.orderId, detail, createdAt: now, resolvedAt: null });
  if (input.orderId !== null) {
    await appendEvent(em, { orderId: input.orderId, type: 'exception.raised', payload: exceptionRaised(input.kind, detail), occurredAt: now }, clock);
  }
}
