/**
 * ticketgateway.gates.v1.GateAdminService: operators provision, rotate, revoke and list gate devices.
 */
import { status } from '@grpc/grpc-js';
import { CheckMethod } from '../domain/model';
import {
  CheckMethod as ProtoCheckMethod,
  type GateDevice,
  type ListDevicesRequest,
  type ListDevicesResponse,
  type ProvisionDeviceRequest,
  type ProvisionDeviceResponse,
  type RevokeDeviceRequest,
  type RevokeDeviceResponse,
  type RotateDeviceSecretRequest,
  type RotateDeviceSecretResponse,
} from '../gen/ticketgateway/gates/v1/gates';
import {
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  DeviceRevokedError,
  InvalidDeviceInputError,
  type DeviceRegistry,
  type GateDeviceView,
} from '../gates/device-registry';
import { GrpcFault } from './grpc-errors';

export const TO_DOMAIN_METHOD = new Map<ProtoCheckMethod, CheckMethod>([
  [ProtoCheckMethod.CHECK_METHOD_CODE, CheckMethod.Code],
  [ProtoCheckMethod.CHECK_METHOD_QR, CheckMethod.Qr],
  [ProtoCheckMethod.CHECK_METHOD_ID_CARD, CheckMethod.IdCard],
]);
const TO_PROTO_METHOD = new Map([...TO_DOMAIN_METHOD].map(([p, d]) => [d, p]));

export function toProtoDevice(d: GateDeviceView): GateDevice {
  return {
    deviceCode: d.deviceCode,
    supplierEnterpriseCode: d.supplierEnterpriseCode,
    scenicSpotCode: d.scenicSpotCode,
    allowedCheckMethods: d.allowedCheckMethods.map((m) => TO_PROTO_METHOD.get(m)!),
    posid: d.posid,
    enabled: d.enabled,
    createTime: new Date(d.createdAt),
    secretRotateTime: d.rotatedAt === null ? undefined : new Date(d.rotatedAt),
    revokeTime: d.revokedAt === null ? undefined : new Date(d.revokedAt),
  };
}

function deviceCodeOf(value: string): string {
  const code = value.trim();
  if (code === '') throw GrpcFault.invalidArgument('device_code', 'is required');
  if (code.length > 64) throw GrpcFault.invalidArgument('device_code', 'is longer than 64 characters');
  return code;
}

function mapError(err: unknown): never {
  if (err instanceof InvalidDeviceInputError) throw GrpcFault.invalidArgument(err.field, err.message.slice(err.field.length + 2));
  if (err instanceof DeviceNotFoundError) throw GrpcFault.notFound('gate device', err.deviceCode);
  if (err instanceof DeviceAlreadyExistsError) throw new GrpcFault(status.ALREADY_EXISTS, err.message, 'GATE_DEVICE_EXISTS');
  if (err instanceof DeviceRevokedError) throw new GrpcFault(status.FAILED_PRECONDITION, err.message, 'DEVICE_REVOKED');
  throw err;
}

export function gateAdminServiceHandlers(deps: { devices: DeviceRegistry }) {
  return {
    async provisionDevice(req: ProvisionDeviceRequest): Promise<ProvisionDeviceResponse> {
      const methods: CheckMethod[] = [];
      for (const m of req.allowedCheckMethods) {
        const d = TO_DOMAIN_METHOD.get(m);
        if (!d) throw GrpcFault.invalidArgument('allowed_check_methods', `unknown check method ${m}`);
        methods.push(d);
      }
      try {
        const { device, secret } = await deps.devices.provision({
          deviceCode: deviceCodeOf(req.deviceCode),
          supplierEnterpriseCode: req.supplierEnterpriseCode,
          scenicSpotCode: req.scenicSpotCode,
          allowedCheckMethods: methods,
          posid: req.posid,
        });
        return { device: toProtoDevice(device), deviceSecret: secret };
      } catch (err) {
        return mapError(err);
      }
    },

    async rotateDeviceSecret(req: RotateDeviceSecretRequest): Promise<RotateDeviceSecretResponse> {
      try {
        const { device, secret } = await deps.devices.rotateSecret(deviceCodeOf(req.deviceCode));
        return { device: toProtoDevice(device), deviceSecret: secret };
      } catch (err) {
        return mapError(err);
      }
    },

    async revokeDevice(req: RevokeDeviceRequest): Promise<RevokeDeviceResponse> {
      try {
        return { device: toProtoDevice(await deps.devices.revoke(deviceCodeOf(req.deviceCode))) };
      } catch (err) {
        return mapError(err);
      }
    },

    async listDevices(req: ListDevicesRequest): Promise<ListDevicesResponse> {
      const spot = req.scenicSpotCode.trim();
      if (spot.length > 64) throw GrpcFault.invalidArgument('scenic_spot_code', 'is longer than 64 characters');
      const devices = await deps.devices.list(spot || undefined);
      return { devices: devices.map(toProtoDevice) };
    },
  };
}
