/**
 * Structured JSON logs (pino). Personal data never reaches the output: known personal fields are masked by
 * name, and every string value is scanned for mobile and ID-card numbers as a second line of defence.
 */
import pino, { type Logger, type DestinationStream } from 'pino';
import { redactPersonalData } from '../domain/personal-data';

export type { Logger } from 'pino';

/** Field names whose values are personal data whatever their content. */
const PERSONAL_FIELDS = new Set([
  'mobile', 'newMobile', 'new_mobile', 'phone', 'linkMobile', 'encrypt_mobile', 'md5_mobile',
  'idCard', 'id_card', 'idCards', 'certificateNo', 'credentials', 'idCardNumber',
]);

function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactPersonalData(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return { type: value.name, message: redactPersonalData(value.message), stack: value.stack ? redactPersonalData(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = PERSONAL_FIELDS.has(k) && v !== undefined && v !== null && v !== '' ? '[redacted]' : scrub(v, depth + 1);
  }
  return out;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'ticket-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrub(obj, 0) as Record<string, unknown>,
      },
      hooks: {
        // Messages are strings too: scan them like values.
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? redactPersonalData(a) : a)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
    },
    destination,
  );
}
