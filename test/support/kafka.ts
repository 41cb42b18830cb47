/**
 * Kafka helpers for tests: read back what the gateway published, from the real (mock-cluster) broker.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type IHeaders } from 'kafkajs';

export interface ConsumedMessage {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are 64-bit; kept as the decimal string kafkajs gives. */
  readonly offset: string;
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
  /** Producer-set timestamp, epoch ms. */
  readonly timestamp: number;
}

export interface ConsumeOptions {
  /** Stop once this many messages arrived. */
  count: number;
  /** Reject if `count` messages have not arrived by then (the mock's first group join alone takes ~3 s). */
  timeoutMs?: number;
  /** After reaching `count`, keep listening this long so duplicates or strays show up in the result. */
  settleMs?: number;
}

/** Brokers the test run provides (test/run-tests.ts exports TEST_KAFKA_BROKERS); fails loudly when missing. */
export function testKafkaBrokers(): string[] {
  const raw = process.env.TEST_KAFKA_BROKERS;
  if (!raw) throw new Error('TEST_KAFKA_BROKERS is not set: run tests through `npm test` (test/run-tests.ts) or export KAFKA_BROKERS');
  return raw.split(',').map((broker) => broker.trim()).filter(Boolean);
}

function headersToStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    if (last !== undefined) out[name] = Buffer.isBuffer(last) ? last.toString('utf8') : String(last);
  }
  return out;
}

/**
 * Consumes `topic` from the beginning with a fresh consumer group until `count` messages arrived, then leaves the
 * group. Messages come back in arrival order; within one partition that is offset order.
 */
export async function consumeAll(brokers: string[] | string, topic: string, options: ConsumeOptions): Promise<ConsumedMessage[]> {
  const { count, timeoutMs = 20_000, settleMs = 0 } = options;
  const kafka = new Kafka({
    clientId: 'test-consumer',
    brokers: typeof brokers === 'string' ? brokers.split(',') : brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
  });
  const consumer = kafka.consumer({
    groupId: `test-${topic}-${randomUUID()}`,
    sessionTimeout: 6_000,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 100,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
  const messages: ConsumedMessage[] = [];
  let reached!: () => void;
  const countReached = new Promise<void>((resolve) => (reached = resolve));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`consumeAll(${topic}): ${messages.length} of ${count} messages within ${timeoutMs} ms`)), timeoutMs);
  });
  // A consumer crash (e.g. broker gone) must fail the wait, not leave it hanging until the timeout.
  let crashed!: (error: Error) => void;
  const crash = new Promise<never>((_, reject) => (crashed = reject));
  const removeCrashListener = consumer.on(consumer.events.CRASH, (event) => {
    if (!event.payload.restart) crashed(new Error(`consumeAll(${topic}): consumer crashed: ${event.payload.error.message}`));
  });
  timedOut.catch(() => undefined);
  crash.catch(() => undefined);

  const work = (async () => {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic: from, partition, message }) => {
        messages.push({
          topic: from,
          partition,
          offset: message.offset,
          key: message.key ? message.key.toString('utf8') : null,
          value: message.value,
          headers: headersToStrings(message.headers),
          timestamp: Number(message.timestamp),
        });
        if (messages.length >= count) reached();
      },
    });
    if (count <= 0) reached();
    await countReached;
  })();
  // Whichever loses the race below must not surface later as an unhandled rejection.
  work.catch(() => undefined);

  try {
    await Promise.race([work, timedOut, crash]);
    if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
    return [...messages];
  } finally {
    clearTimeout(timer);
    removeCrashListener();
    await consumer.disconnect().catch(() => undefined);
  }
}
