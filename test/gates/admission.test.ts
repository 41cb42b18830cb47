/**
 * The gate's gRPC calls end to end: real gRPC server and client on 127.0.0.1, real database (SQLite, and MariaDB
 * for the concurrency test), injected clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
import { CheckMethod, OrderState } from '../../src/domain/model';
import {
  AdmissionResult as R,
  CheckRequest,
  RedeemRequest,
  ReverseAdmissionRequest,
  UploadOfflineAdmissionsRequest,
  ProvisionDeviceRequest,
  RevokeDeviceRequest,
  RotateDeviceSecretRequest,
  ListDevicesRequest,
  CheckMethod as PM,
  type CheckResponse,
  type RedeemResponse,
  type ReverseAdmissionResponse,
  type UploadOfflineAdmissionsResponse,
  type ProvisionDeviceResponse,
  type RevokeDeviceResponse,
  type RotateDeviceSecretResponse,
  type ListDevicesResponse,
} from '../../src/gen/ticketgateway/gates/v1/gates';
import { WriteOffEntity } from '../../src/persistence/entities/write-off.entity';
import { VoucherEntity } from '../../src/persistence/entities/voucher.entity';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { OutboxEventEntity } from '../../src/persistence/entities/outbox-event.entity';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { GateOfflineAdmissionEntity } from '../../src/gates/gate-offline-admission.entity';
import { DATABASE_KINDS } from '../support/database';
import { unary } from '../support/grpc-clients';
import { DAY, HOUR, startGateFixture, T0, type GateFixture } from './gate-fixture';

type Gate = ReturnType<GateFixture['admission']>;

const redeem = (g: Gate, p: Partial<RedeemRequest>) => g.call<RedeemRequest, RedeemResponse>('redeem', RedeemRequest.fromPartial(p));
const check = (g: Gate, p: Partial<CheckRequest>) => g.call<CheckRequest, CheckResponse>('check', CheckRequest.fromPartial(p));
const reverse = (g: Gate, p: Partial<ReverseAdmissionRequest>) => g.call<ReverseAdmissionRequest, ReverseAdmissionResponse>('reverseAdmission', ReverseAdmissionRequest.fromPartial(p));
const upload = (g: Gate, p: Partial<UploadOfflineAdmissionsRequest>) =>
  g.call<UploadOfflineAdmissionsRequest, UploadOfflineAdmissionsResponse>('uploadOfflineAdmissions', UploadOfflineAdmissionsRequest.fromPartial(p));

async function rejects(p: Promise<unknown>, code: status, reason?: string): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    const err = e as ServiceError;
    assert.equal(err.code, code, `expected ${status[code]}, got ${status[err.code]}: ${err.details}`);
    if (reason) assert.equal(err.metadata.get('error-reason')[0], reason);
    return err;
  }
  assert.fail('expected the call to fail');
}

for (const kind of DATABASE_KINDS) {
  test(`50 simultaneous Redeems of a 3-unit code admit exactly 3 (${kind})`, { timeout: 120_000 }, async () => {
    const f = await startGateFixture(kind);
    try {
      const secret = await f.provision('GATE-1');
      const order = await f.issueOrder({ units: 3, code: 'C3UNITS' });
      const gate = f.admission('GATE-1', secret);
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => redeem(gate, { presented: { voucherCode: 'C3UNITS', orderId: '' }, count: 1, clientNonce: `n-${i}` })),
      );
      const admitted = answers.filter((a) => a.outcome!.result === R.ADMISSION_RESULT_ADMITTED);
      assert.equal(admitted.length, 3);
      for (const a of answers) if (a.outcome!.result !== R.ADMISSION_RESULT_ADMITTED) assert.equal(a.outcome!.result, R.ADMISSION_RESULT_USED_UP);
      assert.deepEqual(admitted.map((a) => a.outcome!.remaining).sort(), [0, 1, 2]);
      await f.tdb.db.read(async (em) => {
        const o = await em.findOneByOrFail(OrderEntity, { id: order.id });
        assert.deepEqual([o.available, o.consumed, o.state], [0, 3, OrderState.Consumed]);
        assert.equal((await em.findOneByOrFail(VoucherEntity, { orderId: order.id })).remaining, 0);
        assert.equal(await em.countBy(WriteOffEntity, { orderId: order.id, state: 'recorded' }), 3);
        assert.equal(await em.countBy(OutboxEventEntity, { orderId: order.id, type: 'write-off.recorded' }), 3);
        assert.equal(await em.countBy(WorkItemEntity, { orderId: order.id, kind: 'taobao.consume' }), 3);
      });
    } finally {
      await f.stop();
    }
  });
}

test('every rejection reason, with human text, and bad arguments', { timeout: 60_000 }, async () => {
  const f = await startGateFixture('sqlite');
  try {
    const secret = await f.provision('GATE-S');
    const codeOnlySecret = await f.provision('GATE-CODE', { methods: [CheckMethod.Code] });
    const gate = f.admission('GATE-S', secret);
    const codeGate = f.admission('GATE-CODE', codeOnlySecret);
    let n = 0;
    const r = async (g: Gate, presented: Partial<RedeemRequest['presented']>, count = 1) =>
      (await redeem(g, { presented: { orderId: '', ...presented }, count, clientNonce: `r${++n}` })).outcome!;

    await f.issueOrder({ units: 2, code: 'OK2', qr: 'https://t.example/q?code=OK2' });
    await f.issueOrder({ units: 1, code: 'LATER', validFrom: T0 + HOUR, validTo: T0 + DAY });
    await f.issueOrder({ units: 1, code: 'OLD', validFrom: T0 - 3 * DAY, validTo: T0 - DAY });
    await f.issueOrder({ units: 2, code: 'REFD', state: OrderState.Refunded, ledger: { purchased: 2, available: 0, consumed: 0, refundPending: 0, refunded: 2, expired: 0 } });
    await f.issueOrder({ units: 2, code: 'PEND', state: OrderState.RefundPendingAudit, ledger: { purchased: 2, available: 0, consumed: 0, refundPending: 2, refunded: 0, expired: 0 } });
    await f.issueOrder({ units: 1, code: 'WEST1', outerIid: 'WEST-ADULT' });
    await f.issueOrder({ units: 1, code: 'CODEONLY', outerIid: 'HS-CODE-ONLY', qr: 'CODEONLY' });
    await f.issueOrder({ units: 1, code: 'ISSUING', state: OrderState.Issuing });
    await f.issueOrder({ units: 1, code: 'CLOSED', state: OrderState.Closed });
    await f.issueOrder({ units: 1, code: 'VOID1', vouchers: [{ code: 'VOID1', total: 1, status: 'void' }] });

    const expect = async (p: Promise<{ result: R; message: string }>, want: R, text: RegExp) => {
      const o = await p;
      assert.equal(o.result, want, `got ${R[o.result]} (${o.message})`);
      assert.match(o.message, text);
    };
    await expect(r(gate, { voucherCode: 'NOPE' }), R.ADMISSION_RESULT_UNKNOWN_CODE, /Unknown code/);
    await expect(r(gate, { voucherCode: 'LATER' }), R.ADMISSION_RESULT_NOT_YET_VALID, /Not valid yet/);
    await expect(r(gate, { voucherCode: 'OLD' }), R.ADMISSION_RESULT_EXPIRED, /Expired/);
    await expect(r(gate, { voucherCode: 'REFD' }), R.ADMISSION_RESULT_REFUNDED, /Refunded/);
    await expect(r(gate, { voucherCode: 'PEND' }), R.ADMISSION_RESULT_REFUND_PENDING, /refund is pending/);
    await expect(r(gate, { voucherCode: 'WEST1' }), R.ADMISSION_RESULT_WRONG_SCENIC_SPOT, /another scenic spot/);
    await expect(r(gate, { qrPayload: 'CODEONLY' }), R.ADMISSION_RESULT_METHOD_NOT_ALLOWED, /not allowed/); // product: code only
    await expect(r(codeGate, { qrPayload: 'https://t.example/q?code=OK2' }), R.ADMISSION_RESULT_METHOD_NOT_ALLOWED, /not allowed/); // device: code only
    await expect(r(gate, { voucherCode: 'ISSUING' }), R.ADMISSION_RESULT_NOT_ISSUED, /not issued/);
    await expect(r(gate, { voucherCode: 'CLOSED' }), R.ADMISSION_RESULT_ORDER_CLOSED, /closed/);
    await expect(r(gate, { voucherCode: 'VOID1' }), R.ADMISSION_RESULT_CODE_VOIDED, /replaced or voided/);
    await expect(r(gate, { voucherCode: 'OK2' }, 3), R.ADMISSION_RESULT_COUNT_TOO_LARGE, /Fewer people/);
    await expect(r(gate, { qrPayload: 'https://t.example/q?code=OK2&x=tampered' }), R.ADMISSION_RESULT_UNKNOWN_CODE, /Unknown/);

    // Check has no effect; then admit both by QR, and the code is used up.
    const checked = (await check(gate, { presented: { voucherCode: 'OK2', orderId: '' }, count: 2 })).outcome!;
    assert.equal(checked.result, R.ADMISSION_RESULT_ADMITTED);
    assert.equal(checked.remaining, 2);
    const ok = (await redeem(gate, { presented: { qrPayload: 'https://t.example/q?code=OK2', orderId: '' }, count: 2, clientNonce: 'same' })).outcome!;
    assert.equal(ok.result, R.ADMISSION_RESULT_ADMITTED);
    assert.equal(ok.remaining, 0);
    await expect(r(gate, { voucherCode: 'OK2' }), R.ADMISSION_RESULT_USED_UP, /Already used/);
    // The same nonce again: the same answer, nothing new.
    const again = (await redeem(gate, { presented: { qrPayload: 'https://t.example/q?code=OK2', orderId: '' }, count: 2, clientNonce: 'same' })).outcome!;
    assert.equal(again.result, R.ADMISSION_RESULT_ADMITTED);
    assert.equal(again.replayed, true);
    assert.equal(again.writeOffId, ok.writeOffId);
    const reused = (await redeem(gate, { presented: { voucherCode: 'LATER', orderId: '' }, count: 1, clientNonce: 'same' })).outcome!;
    // LATER is refused before any write: a refused call with a used nonce says the nonce belongs to another admission.
    assert.equal(reused.result, R.ADMISSION_RESULT_NONCE_REUSED);
    assert.equal(await f.tdb.db.read((em) => em.countBy(WriteOffEntity, {})), 1);

    // Bad arguments: INVALID_ARGUMENT naming the field, nothing recorded.
    await rejects(redeem(gate, { presented: { voucherCode: 'OK2', orderId: '' }, count: -1, clientNonce: 'x1' }), status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    await rejects(redeem(gate, { presented: { voucherCode: 'X'.repeat(65), orderId: '' }, clientNonce: 'x2' }), status.INVALID_ARGUMENT);
    await rejects(redeem(gate, { presented: { qrPayload: 'q'.repeat(1025), orderId: '' }, clientNonce: 'x3' }), status.INVALID_ARGUMENT);
    await rejects(redeem(gate, { presented: { voucherCode: 'OK2', orderId: '' }, clientNonce: '' }), status.INVALID_ARGUMENT);
    await rejects(redeem(gate, { presented: { voucherCode: 'OK2', orderId: '' }, count: 1000, clientNonce: 'x4' }), status.INVALID_ARGUMENT);
    await rejects(redeem(gate, { clientNonce: 'x5' }), status.INVALID_ARGUMENT);
    const badId = await rejects(redeem(gate, { presented: { idCardNumber: '11010119900307123', orderId: '' }, clientNonce: 'x6' }), status.INVALID_ARGUMENT);
    assert.doesNotMatch(badId.details, /11010119900307123/, 'the ID number is never echoed');
    await rejects(reverse(gate, { writeOffId: ok.writeOffId, count: 0 }), status.INVALID_ARGUMENT);

    // Unknown device or wrong secret: UNAUTHENTICATED.
    await rejects(redeem(f.admission('GATE-S', 'wrong'), { presented: { voucherCode: 'OK2', orderId: '' }, clientNonce: 'y' }), status.UNAUTHENTICATED, 'DEVICE_NOT_AUTHENTICATED');
    await rejects(redeem(f.admission('NO-SUCH', secret), { presented: { voucherCode: 'OK2', orderId: '' }, clientNonce: 'y' }), status.UNAUTHENTICATED, 'DEVICE_NOT_AUTHENTICATED');
    assert.equal(await f.tdb.db.read((em) => em.countBy(WriteOffEntity, {})), 1);
  } finally {
    await f.stop();
  }
});

test('ID card matching two orders: candidates masked, never a guess; the chosen one is admitted', { timeout: 60_000 }, async () => {
  const f = await startGateFixture('sqlite');
  try {
    const gate = f.admission('GATE-ID', await f.provision('GATE-ID'));
    const id = '110101199003071234';
    const a = await f.issueOrder({ units: 1, code: 'IDA', idCard: id, visitorName: '张三' });
    const b = await f.issueOrder({ units: 2, code: 'IDB', idCard: id, visitorName: '张三' });
    const first = (await redeem(gate, { presented: { idCardNumber: id, orderId: '' }, clientNonce: 'id1' })).outcome!;
    assert.equal(first.result, R.ADMISSION_RESULT_AMBIGUOUS_ID_CARD);
    assert.deepEqual(first.candidates.map((c) => c.orderId).sort(), [a.id, b.id].sort());
    for (const c of first.candidates) {
      assert.equal(c.idCardMasked, '110***********1234');
      assert.equal(c.visitorNameMasked, '张*');
    }
    assert.doesNotMatch(JSON.stringify(first), new RegExp(id));
    assert.equal(await f.tdb.db.read((em) => em.countBy(WriteOffEntity, {})), 0, 'nothing admitted on an ambiguous card');
    const chosen = (await redeem(gate, { presented: { idCardNumber: id, orderId: b.id }, count: 2, clientNonce: 'id2' })).outcome!;
    assert.equal(chosen.result, R.ADMISSION_RESULT_ADMITTED);
    assert.equal(chosen.orderId, b.id);
    // Only one usable order is left: no ambiguity now.
    const rest = (await redeem(gate, { presented: { idCardNumber: id.slice(0, 17) + 'x', orderId: '' }, clientNonce: 'id3' })).outcome!;
    assert.equal(rest.result, R.ADMISSION_RESULT_UNKNOWN_CODE, 'a different number (x) matches nothing');
    const last = (await redeem(gate, { presented: { idCardNumber: id, orderId: '' }, clientNonce: 'id4' })).outcome!;
    assert.equal(last.result, R.ADMISSION_RESULT_ADMITTED);
    assert.equal(last.orderId, a.id);
  } finally {
    await f.stop();
  }
});

test('reverse at 1h59 restores the units; at 2h01 it is refused with the deadline', { timeout: 60_000 }, async () => {
  const f = await startGateFixture('sqlite');
  try {
    const gate = f.admission('GATE-R', await f.provision('GATE-R'));
    const order = await f.issueOrder({ units: 4, code: 'REV4' });
    const w1 = (await redeem(gate, { presented: { voucherCode: 'REV4', orderId: '' }, count: 2, clientNonce: 'a' })).outcome!;
    const w2 = (await redeem(gate, { presented: { voucherCode: 'REV4', orderId: '' }, count: 1, clientNonce: 'b' })).outcome!;
    assert.equal(w2.remaining, 1);

    f.clock.t = T0 + HOUR + 59 * 60_000;
    const mismatch = await reverse(gate, { writeOffId: w1.writeOffId, count: 1, reason: 'turnstile' });
    assert.equal(mismatch.result, R.ADMISSION_RESULT_REVERSE_COUNT_MISMATCH);
    const ok = await reverse(gate, { writeOffId: w1.writeOffId, count: 2, reason: 'turnstile did not turn' });
    assert.equal(ok.result, R.ADMISSION_RESULT_ADMITTED, ok.message);
    assert.equal(ok.remaining, 3);
    assert.equal((await reverse(gate, { writeOffId: w1.writeOffId, count: 2 })).result, R.ADMISSION_RESULT_ALREADY_REVERSED);

    f.clock.t = T0 + 2 * HOUR + 60_000;
    const late = await reverse(gate, { writeOffId: w2.writeOffId, count: 1 });
    assert.equal(late.result, R.ADMISSION_RESULT_REVERSE_WINDOW_PASSED);
    assert.equal(late.reverseDeadline!.getTime(), T0 + 2 * HOUR);
    assert.equal((await reverse(gate, { writeOffId: 'wo_nope', count: 1 })).result, R.ADMISSION_RESULT_WRITE_OFF_NOT_FOUND);

    await f.tdb.db.read(async (em) => {
      const o = await em.findOneByOrFail(OrderEntity, { id: order.id });
      assert.deepEqual([o.available, o.consumed], [3, 1]);
      assert.equal((await em.findOneByOrFail(VoucherEntity, { orderId: order.id })).remaining, 3);
      const w = await em.findOneByOrFail(WriteOffEntity, { id: w1.writeOffId });
      assert.equal(w.state, 'reversed');
      assert.equal(await em.countBy(WorkItemEntity, { kind: 'taobao.reverse', orderId: order.id }), 1);
      assert.equal(await em.countBy(OutboxEventEntity, { type: 'write-off.reversed', orderId: order.id }), 1);
    });
    // The units are usable again.
    const again = (await redeem(gate, { presented: { voucherCode: 'REV4', orderId: '' }, count: 3, clientNonce: 'c' })).outcome!;
    assert.equal(again.result, R.ADMISSION_RESULT_ADMITTED);
  } finally {
    await f.stop();
  }
});

test('device revoked mid-day, secret rotated, admin RPCs', { timeout: 60_000 }, async () => {
  const f = await startGateFixture('sqlite');
  try {
    const prov = await unary<ProvisionDeviceRequest, ProvisionDeviceResponse>(
      f.admin,
      'provisionDevice',
      ProvisionDeviceRequest.fromPartial({ deviceCode: 'GATE-M', supplierEnterpriseCode: 'ENT1', scenicSpotCode: 'HS-SOUTH', allowedCheckMethods: [PM.CHECK_METHOD_CODE], posid: 'POS_M' }),
    );
    assert.ok(prov.deviceSecret.length >= 32);
    assert.equal(prov.device!.enabled, true);
    await rejects(
      unary(f.admin, 'provisionDevice', ProvisionDeviceRequest.fromPartial({ deviceCode: 'GATE-M', supplierEnterpriseCode: 'E', scenicSpotCode: 'S', allowedCheckMethods: [PM.CHECK_METHOD_CODE], posid: 'P' })),
      status.ALREADY_EXISTS,
    );
    await rejects(
      unary(f.admin, 'provisionDevice', ProvisionDeviceRequest.fromPartial({ deviceCode: 'GATE-N', supplierEnterpriseCode: 'E', scenicSpotCode: 'S', allowedCheckMethods: [], posid: 'P' })),
      status.INVALID_ARGUMENT,
    );
    await f.issueOrder({ units: 5, code: 'DAY5' });
    let gate = f.admission('GATE-M', prov.deviceSecret);
    assert.equal((await redeem(gate, { presented: { voucherCode: 'DAY5', orderId: '' }, clientNonce: 'm1' })).outcome!.result, R.ADMISSION_RESULT_ADMITTED);

    const rotated = await unary<RotateDeviceSecretRequest, RotateDeviceSecretResponse>(f.admin, 'rotateDeviceSecret', { deviceCode: 'GATE-M' });
    assert.notEqual(rotated.deviceSecret, prov.deviceSecret);
    await rejects(redeem(gate, { presented: { voucherCode: 'DAY5', orderId: '' }, clientNonce: 'm2' }), status.UNAUTHENTICATED);
    gate = f.admission('GATE-M', rotated.deviceSecret);
    assert.equal((await redeem(gate, { presented: { voucherCode: 'DAY5', orderId: '' }, clientNonce: 'm3' })).outcome!.result, R.ADMISSION_RESULT_ADMITTED);

    f.clock.t = T0 + 5 * HOUR;
    const revoked = await unary<RevokeDeviceRequest, RevokeDeviceResponse>(f.admin, 'revokeDevice', { deviceCode: 'GATE-M' });
    assert.equal(revoked.device!.enabled, false);
    assert.equal(revoked.device!.revokeTime!.getTime(), T0 + 5 * HOUR);
    const refused = (await redeem(gate, { presented: { voucherCode: 'DAY5', orderId: '' }, clientNonce: 'm4' })).outcome!;
    assert.equal(refused.result, R.ADMISSION_RESULT_DEVICE_REVOKED);
    assert.equal((await check(gate, { presented: { voucherCode: 'DAY5', orderId: '' } })).outcome!.result, R.ADMISSION_RESULT_DEVICE_REVOKED);
    await rejects(unary(f.admin, 'rotateDeviceSecret', { deviceCode: 'GATE-M' }), status.FAILED_PRECONDITION, 'DEVICE_REVOKED');
    await rejects(unary(f.admin, 'revokeDevice', { deviceCode: 'NOPE' }), status.NOT_FOUND);
    assert.equal(await f.tdb.db.read((em) => em.countBy(WriteOffEntity, {})), 2, 'nothing after the revocation');
    const list = await unary<ListDevicesRequest, ListDevicesResponse>(f.admin, 'listDevices', { scenicSpotCode: 'HS-SOUTH' });
    assert.deepEqual(list.devices.map((d) => [d.deviceCode, d.enabled]), [['GATE-M', false]]);
    assert.doesNotMatch(JSON.stringify(list), new RegExp(rotated.deviceSecret), 'the secret is never listed');
  } finally {
    await f.stop();
  }
});

test('offline upload: recorded once per nonce; what can no longer be honoured is a conflict, not dropped', { timeout: 60_000 }, async () => {
  const f = await startGateFixture('sqlite');
  try {
    const gate = f.admission('GATE-O', await f.provision('GATE-O'));
    const order = await f.issueOrder({ units: 2, code: 'OFF2' });
    const at = new Date(T0 - 30 * 60_000);
    const batch = {
      admissions: [
        { presented: { voucherCode: 'OFF2', orderId: '' }, count: 2, clientNonce: 'off-1', admittedTime: at },
        { presented: { voucherCode: 'OFF2', orderId: '' }, count: 1, clientNonce: 'off-2', admittedTime: at },
        { presented: { voucherCode: 'GHOST', orderId: '' }, count: 1, clientNonce: 'off-3', admittedTime: at },
      ],
    };
    const first = await upload(gate, batch);
    assert.deepEqual(first.results.map((r) => R[r.outcome!.result]), ['ADMISSION_RESULT_ADMITTED', 'ADMISSION_RESULT_CONFLICT', 'ADMISSION_RESULT_CONFLICT']);
    assert.match(first.results[1]!.outcome!.message, /USED_UP/);
    const second = await upload(gate, batch);
    assert.deepEqual(second.results.map((r) => [R[r.outcome!.result], r.outcome!.replayed]), [
      ['ADMISSION_RESULT_ADMITTED', true],
      ['ADMISSION_RESULT_CONFLICT', true],
      ['ADMISSION_RESULT_CONFLICT', true],
    ]);
    assert.equal(second.results[0]!.outcome!.writeOffId, first.results[0]!.outcome!.writeOffId);
    await f.tdb.db.read(async (em) => {
      const o = await em.findOneByOrFail(OrderEntity, { id: order.id });
      assert.deepEqual([o.available, o.consumed], [0, 2]);
      const ws = await em.find(WriteOffEntity, { where: { orderId: order.id }, order: { state: 'ASC' } });
      assert.deepEqual(ws.map((w) => [w.state, w.source, w.count, w.admittedAt]), [
        ['conflict', 'gate_offline', 1, at.getTime()],
        ['recorded', 'gate_offline', 2, at.getTime()],
      ]);
      assert.equal(await em.countBy(OperatorExceptionEntity, { kind: 'write_off_conflict' }), 2);
      assert.equal(await em.countBy(GateOfflineAdmissionEntity, {}), 3);
      assert.equal(await em.countBy(WorkItemEntity, { kind: 'taobao.consume' }), 1);
    });
    await rejects(
      upload(gate, { admissions: [{ presented: { voucherCode: 'OFF2', orderId: '' }, count: 1, clientNonce: 'f', admittedTime: new Date(T0 + HOUR) }] }),
      status.INVALID_ARGUMENT,
    );
    await rejects(upload(gate, { admissions: [batch.admissions[0]!, batch.admissions[0]!] }), status.INVALID_ARGUMENT);
  } finally {
    await f.stop();
  }
});
