/**
 * ticketgateway.gates.v1.AdmissionService: the gate's calls. Each call authenticates the device from the metadata
 * (`x-device-code`, `x-device-secret`); bad arguments are INVALID_ARGUMENT, business answers are typed results.
 */
import { status, type Metadata } from '@grpc/grpc-js';
import {
  AdmissionResult,
  type AdmissionOutcome,
  type CheckRequest,
  type CheckResponse,
  type Presented as ProtoPresented,
  type RedeemRequest,
  type RedeemResponse,
  type ReverseAdmissionRequest,
  type ReverseAdmissionResponse,
  type UploadOfflineAdmissionsRequest,
  type UploadOfflineAdmissionsResponse,
} from '../gen/ticketgateway/gates/v1/gates';
import type { AdmissionAnswer, AdmissionDesk, OfflineAdmissionInput, Presented } from '../gates/admission-desk';
import { ADMISSION_TEXT, GATE_LIMITS, NONCE_PATTERN, type AdmissionReason } from '../gates/admission-rules';
import type { DeviceRegistry, GateDeviceView } from '../gates/device-registry';
import type { Clock } from '../domain/model';
import type { CallContext } from './grpc-server';
import { GrpcFault } from './grpc-errors';

export function toProtoResult(reason: AdmissionReason): AdmissionResult {
  return AdmissionResult[`ADMISSION_RESULT_${reason}` as keyof typeof AdmissionResult] as AdmissionResult;
}

function toProtoOutcome(a: AdmissionAnswer): AdmissionOutcome {
  return {
    result: toProtoResult(a.reason),
    message: a.message,
    remaining: a.remaining,
    writeOffId: a.writeOffId ?? '',
    orderId: a.orderId ?? '',
    candidates: (a.candidates ?? []).map((c) => ({
      orderId: c.orderId,
      itemTitle: c.itemTitle,
      idCardMasked: c.idCardMasked,
      visitorNameMasked: c.visitorNameMasked,
      available: c.available,
      validStartTime: new Date(c.validStart),
      validEndTime: new Date(c.validEnd),
    })),
    replayed: a.replayed ?? false,
    validStartTime: a.validity ? new Date(a.validity.start) : undefined,
    validEndTime: a.validity ? new Date(a.validity.end) : undefined,
  };
}

function metadataText(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

function presentedOf(field: string, p: ProtoPresented | undefined): Presented {
  if (!p) throw GrpcFault.invalidArgument(field, 'is required');
  const given = [p.voucherCode, p.qrPayload, p.idCardNumber].filter((v) => v !== undefined).length;
  if (given !== 1) throw GrpcFault.invalidArgument(field, 'exactly one of voucher_code, qr_payload, id_card_number');
  const orderId = p.orderId.trim();
  if (orderId.length > 40) throw GrpcFault.invalidArgument(`${field}.order_id`, 'is longer than 40 characters');
  if (p.voucherCode !== undefined) {
    const code = p.voucherCode.trim();
    if (code === '' || code.length > GATE_LIMITS.maxCodeLength) throw GrpcFault.invalidArgument(`${field}.voucher_code`, `must be 1-${GATE_LIMITS.maxCodeLength} characters`);
    return { kind: 'code', code };
  }
  if (p.qrPayload !== undefined) {
    if (p.qrPayload.trim() === '' || p.qrPayload.length > GATE_LIMITS.maxQrLength) throw GrpcFault.invalidArgument(`${field}.qr_payload`, `must be 1-${GATE_LIMITS.maxQrLength} characters`);
    return { kind: 'qr', payload: p.qrPayload };
  }
  const idCard = (p.idCardNumber ?? '').replace(/\s+/g, '');
  // Never echo the number back: the message names the field only.
  if (!/^(\d{15}|\d{17}[\dXx])$/.test(idCard) || idCard.length > GATE_LIMITS.maxIdCardLength) {
    throw GrpcFault.invalidArgument(`${field}.id_card_number`, 'is not a 15- or 18-character ID-card number');
  }
  return { kind: 'id_card', idCard, orderId: orderId || undefined };
}

function countOf(field: string, count: number): number {
  if (!Number.isSafeInteger(count) || count < 0) throw GrpcFault.invalidArgument(field, 'must not be negative');
  if (count > GATE_LIMITS.maxCount) throw GrpcFault.invalidArgument(field, `must be at most ${GATE_LIMITS.maxCount}`);
  return count === 0 ? 1 : count;
}

function nonceOf(field: string, nonce: string): string {
  if (!NONCE_PATTERN.test(nonce)) throw GrpcFault.invalidArgument(field, 'must be 1-64 of [A-Za-z0-9_.:-]');
  return nonce;
}

const REVOKED: AdmissionOutcome = toProtoOutcome({ reason: 'DEVICE_REVOKED', message: ADMISSION_TEXT.DEVICE_REVOKED, remaining: 0 });

export function admissionServiceHandlers(deps: {
  desk: AdmissionDesk;
  devices: DeviceRegistry;
  clock: Clock;
  /** Counts each decided admission (result reason x check method) for metrics. */
  onDecided?: (reason: AdmissionReason | 'DEVICE_REVOKED', method: Presented['kind']) => void;
}) {
  const decided = (reason: AdmissionReason | 'DEVICE_REVOKED', method: Presented['kind']): void => deps.onDecided?.(reason, method);

  /** The calling device, or UNAUTHENTICATED; a revoked device comes back as undefined (answer DEVICE_REVOKED). */
  async function device(ctx: CallContext): Promise<GateDeviceView | undefined> {
    const auth = await deps.devices.authenticate(metadataText(ctx.metadata, 'x-device-code'), metadataText(ctx.metadata, 'x-device-secret'));
    if (auth.ok) return auth.device;
    if (auth.reason === 'DEVICE_REVOKED') return undefined;
    throw new GrpcFault(status.UNAUTHENTICATED, 'unknown gate device or wrong secret', 'DEVICE_NOT_AUTHENTICATED');
  }

  return {
    async check(req: CheckRequest, ctx: CallContext): Promise<CheckResponse> {
      const presented = presentedOf('presented', req.presented);
      const count = countOf('count', req.count);
      const d = await device(ctx);
      if (!d) return { outcome: REVOKED };
      return { outcome: toProtoOutcome(await deps.desk.check(d, presented, count)) };
    },

    async redeem(req: RedeemRequest, ctx: CallContext): Promise<RedeemResponse> {
      const presented = presentedOf('presented', req.presented);
      const count = countOf('count', req.count);
      const nonce = nonceOf('client_nonce', req.clientNonce);
      const d = await device(ctx);
      if (!d) {
        decided('DEVICE_REVOKED', presented.kind);
        return { outcome: REVOKED };
      }
      const answer = await deps.desk.redeem(d, presented, count, nonce);
      decided(answer.reason, presented.kind);
      return { outcome: toProtoOutcome(answer) };
    },

    async uploadOfflineAdmissions(req: UploadOfflineAdmissionsRequest, ctx: CallContext): Promise<UploadOfflineAdmissionsResponse> {
      if (req.admissions.length > GATE_LIMITS.maxOfflineBatch) throw GrpcFault.invalidArgument('admissions', `at most ${GATE_LIMITS.maxOfflineBatch} per call`);
      const now = deps.clock.now();
      const items: OfflineAdmissionInput[] = req.admissions.map((a, i) => {
        const f = `admissions[${i}]`;
        const at = a.admittedTime?.getTime();
        if (at === undefined || !Number.isFinite(at)) throw GrpcFault.invalidArgument(`${f}.admitted_time`, 'is required');
        if (at > now + GATE_LIMITS.maxFutureSkewMs) throw GrpcFault.invalidArgument(`${f}.admitted_time`, 'is in the future');
        return { presented: presentedOf(`${f}.presented`, a.presented), count: countOf(`${f}.count`, a.count), nonce: nonceOf(`${f}.client_nonce`, a.clientNonce), admittedAt: at };
      });
      const nonces = new Set(items.map((i) => i.nonce));
      if (nonces.size !== items.length) throw GrpcFault.invalidArgument('admissions', 'a client_nonce repeats within the upload');
      const d = await device(ctx);
      if (!d) return { results: items.map((i) => ({ clientNonce: i.nonce, outcome: REVOKED })) };
      const results = await deps.desk.uploadOffline(d, items);
      results.forEach((r, i) => decided(r.answer.reason, items[i]!.presented.kind));
      return { results: results.map((r) => ({ clientNonce: r.nonce, outcome: toProtoOutcome(r.answer) })) };
    },

    async reverseAdmission(req: ReverseAdmissionRequest, ctx: CallContext): Promise<ReverseAdmissionResponse> {
      const id = req.writeOffId.trim();
      if (id === '' || id.length > 40) throw GrpcFault.invalidArgument('write_off_id', 'must be 1-40 characters');
      if (!Number.isSafeInteger(req.count) || req.count <= 0) throw GrpcFault.invalidArgument('count', 'must be positive');
      if (req.count > GATE_LIMITS.maxCount) throw GrpcFault.invalidArgument('count', `must be at most ${GATE_LIMITS.maxCount}`);
      if (req.reason.length > GATE_LIMITS.maxReasonLength) throw GrpcFault.invalidArgument('reason', `is longer than ${GATE_LIMITS.maxReasonLength} characters`);
      const d = await device(ctx);
      if (!d) return { result: AdmissionResult.ADMISSION_RESULT_DEVICE_REVOKED, message: ADMISSION_TEXT.DEVICE_REVOKED, remaining: 0, reverseDeadline: undefined };
      const r = await deps.desk.reverse(d, id, req.count, req.reason);
      return {
        result: toProtoResult(r.reason),
        message: r.message,
        remaining: r.remaining,
        reverseDeadline: r.reverseDeadline === undefined ? undefined : new Date(r.reverseDeadline),
      };
    },
  };
}
