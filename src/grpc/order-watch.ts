/**
 * WatchOrder's engine: an order's events read from outbox_events in id order, a catch-up query from the caller's
 * point and then a poll, so every replica serves watchers without a broker and a watcher never misses an event
 * that was committed. Bounded: a cap on open watchers, a batch size per read, and a time limit per stream.
 */
import { MoreThan } from 'typeorm';
import { decodeOrderEvent } from '../outbox/outbox';
import type { Database } from '../persistence/database';
import { OutboxEventEntity } from '../persistence/entities/outbox-event.entity';
import type { OrderEvent } from '../gen/ticketgateway/events/v1/events';

export interface OrderWatchSettings {
  /** How often an idle watcher looks for new events. */
  readonly pollMs: number;
  /** A stream ends (cleanly) after this long; the caller resumes from its last sequence. */
  readonly maxStreamMs: number;
  /** Open watchers at most, per process. */
  readonly maxWatchers: number;
  /** Events per read. */
  readonly batchSize: number;
}

export const DEFAULT_ORDER_WATCH_SETTINGS: OrderWatchSettings = { pollMs: 250, maxStreamMs: 30 * 60_000, maxWatchers: 256, batchSize: 100 };

export interface WatchedEvent {
  readonly sequence: number;
  readonly event: OrderEvent;
}

export class TooManyWatchersError extends Error {
  override readonly name = 'TooManyWatchersError';
}

export class OrderWatch {
  private readonly open = new Set<AbortController>();
  private closed = false;
  readonly settings: OrderWatchSettings;

  constructor(private readonly db: Database, settings: Partial<OrderWatchSettings> = {}) {
    this.settings = { ...DEFAULT_ORDER_WATCH_SETTINGS, ...settings };
  }

  get watchers(): number {
    return this.open.size;
  }

  /**
   * The order's events after `afterSequence`, as they are appended, until `signal` aborts, the time limit passes
   * or close() is called. Reserve a slot first (synchronously), so the cap holds before the first read.
   */
  watch(orderId: string, afterSequence: number, signal: AbortSignal): AsyncIterable<WatchedEvent> {
    if (this.closed || this.open.size >= this.settings.maxWatchers) throw new TooManyWatchersError(`at most ${this.settings.maxWatchers} order watchers may be open`);
    const stop = new AbortController();
    this.open.add(stop);
    const onAbort = (): void => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) stop.abort();
    const deadline = setTimeout(() => stop.abort(), this.settings.maxStreamMs);
    // Idempotent: runs when the stream stops for any reason, even if it was never iterated.
    const release = (): void => {
      clearTimeout(deadline);
      signal.removeEventListener('abort', onAbort);
      this.open.delete(stop);
    };
    stop.signal.addEventListener('abort', release, { once: true });
    return this.events(orderId, afterSequence, stop.signal, release);
  }

  private async *events(orderId: string, afterSequence: number, stop: AbortSignal, release: () => void): AsyncGenerator<WatchedEvent> {
    try {
      let cursor = afterSequence;
      while (!stop.aborted) {
        const rows = await this.db.read((em) =>
          em.find(OutboxEventEntity, { where: { orderId, id: MoreThan(cursor) }, order: { id: 'ASC' }, take: this.settings.batchSize }),
        );
        for (const row of rows) {
          if (stop.aborted) return;
          cursor = Number(row.id);
          yield { sequence: cursor, event: decodeOrderEvent(row.payload) };
        }
        if (rows.length < this.settings.batchSize) await sleep(this.settings.pollMs, stop);
      }
    } finally {
      release();
    }
  }

  /** Ends every open stream (at shutdown, so graceful stop does not wait for watchers). */
  close(): void {
    this.closed = true;
    for (const c of this.open) c.abort();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
