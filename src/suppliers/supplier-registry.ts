/**
 * The one place supplier adapters are registered. Adding a supplier = one folder + one line here.
 * Each factory takes that supplier instance's config (validated by the adapter) and shared dependencies.
 */
import type { Clock } from '../domain/model';
import { systemClock } from '../domain/model';
import { LIANHE, LianheAdapter, type LianheConfig } from './lianhe/lianhe-adapter';
import { SANDBOX, SandboxAdapter, type SandboxConfig } from './sandbox/sandbox-adapter';
import type { SupplierAdapter } from './supplier-adapter';
import { SupplierConfigError } from './supplier-errors';
import { ZHIYOUBAO, ZhiyoubaoAdapter, type ZhiyoubaoConfig } from './zhiyoubao/zhiyoubao-adapter';

export interface SupplierDeps {
  readonly clock?: Clock;
}

export type SupplierFactory = (config: unknown, deps: Required<SupplierDeps>) => SupplierAdapter;

const factories: Readonly<Record<string, SupplierFactory>> = {
  [ZHIYOUBAO]: (config, deps) => new ZhiyoubaoAdapter(config as ZhiyoubaoConfig, deps.clock),
  [LIANHE]: (config, deps) => new LianheAdapter(config as LianheConfig, deps.clock),
  [SANDBOX]: (config, deps) => new SandboxAdapter((config ?? {}) as SandboxConfig, deps.clock),
};

export function supplierCodes(): string[] {
  return Object.keys(factories);
}

/** Builds the adapter for one configured supplier instance. Config problems throw SupplierConfigError. */
export function createSupplier(code: string, config: unknown, deps: SupplierDeps = {}): SupplierAdapter {
  const factory = Object.prototype.hasOwnProperty.call(factories, code) ? factories[code] : undefined;
  if (!factory) throw new SupplierConfigError(code, `unknown supplier '${code}' (known: ${supplierCodes().join(', ')})`);
  if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) {
    throw new SupplierConfigError(code, 'supplier config must be an object');
  }
  return factory(config, { clock: deps.clock ?? systemClock });
}
