/**
 * One circuit breaker per upstream ('taobao', 'supplier:<code>'), created on first use and reused, so every call
 * to an upstream shares one view of its health. Built on opossum 9.
 *
 * - Each call gets its own AbortController: when the breaker's timeout (or the caller's tighter deadline) fires,
 *   the call is really aborted (the HTTP request is torn down), not merely abandoned.
 * - Business rejections (the upstream answered, and said no) pass the errorFilter: they neither trip the breaker
 *   nor count as failures. Only faults (5xx, timeouts, connection errors) do.
 * - After resetTimeout an open breaker goes half-open and lets ONE probe through; success closes it.
 */
import CircuitBreaker from 'opossum';

export type BreakerState = 'closed' | 'half_open' | 'open';

export interface BreakerSettings {
  /** A call taking longer is aborted and counted as a failure (default 5 s). Keep below the caller's deadline. */
  readonly timeoutMs: number;
  /** Failure percentage (over the rolling window) that opens the breaker (default 50). */
  readonly errorThresholdPercentage: number;
  /** Calls in the window before the percentage is considered at all (default 5). */
  readonly volumeThreshold: number;
  /** How long the breaker stays open before a half-open probe (default 10 s). */
  readonly resetTimeoutMs: number;
  /** Rolling statistics window (default 10 s, in 10 buckets). */
  readonly rollingCountTimeoutMs: number;
  readonly rollingCountBuckets: number;
}

export const DEFAULT_BREAKER_SETTINGS: BreakerSettings = {
  timeoutMs: 5_000,
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  resetTimeoutMs: 10_000,
  rollingCountTimeoutMs: 10_000,
  rollingCountBuckets: 10,
};

/**
 * An error meaning "the upstream answered and refused" (invalid code, already used, business rule). Throw it
 * (or anything with `businessRejection: true`) from an action when the caller wants a throw rather than a
 * returned value; it passes through the breaker without counting as a failure.
 */
export class BusinessRejectionError extends Error {
  override readonly name: string = 'BusinessRejectionError';
  readonly businessRejection = true;
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The breaker is open (or half-open with its probe already out): the call was not made. */
export class BreakerOpenError extends Error {
  override readonly name: string = 'BreakerOpenError';
  constructor(readonly upstream: string) {
    super(`circuit breaker for ${upstream} is open; call not made`);
  }
}

/** The call exceeded its time budget and was aborted. Whether the upstream acted on it is unknown. */
export class UpstreamTimeoutError extends Error {
  override readonly name: string = 'UpstreamTimeoutError';
  constructor(
    readonly upstream: string,
    readonly timeoutMs: number,
  ) {
    super(`call to ${upstream} timed out after ${timeoutMs} ms and was aborted`);
  }
}

export function isBusinessRejection(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { businessRejection?: unknown }).businessRejection === true;
}

export interface BreakerRegistryOptions {
  readonly defaults?: Partial<BreakerSettings>;
  /** Overrides per upstream name, e.g. { taobao: { timeoutMs: 3000 } }. */
  readonly perUpstream?: Readonly<Record<string, Partial<BreakerSettings>>>;
  /** Which errors are business answers, not faults (default: isBusinessRejection). */
  readonly errorFilter?: (err: unknown) => boolean;
}

export interface CallOptions {
  /** The caller's own cancellation (shutdown, an incoming request that went away). */
  readonly signal?: AbortSignal;
  /** Absolute deadline (epoch ms) of the caller; the call is aborted a little before it. */
  readonly deadline?: number;
}

export type StateChangeListener = (upstream: string, state: BreakerState) => void;

/** Margin kept between our abort and the caller's deadline, so the caller still has time to answer. */
const DEADLINE_MARGIN_MS = 50;

type Action = (signal: AbortSignal) => Promise<unknown>;

export class BreakerRegistry {
  private readonly breakers = new Map<string, CircuitBreaker<[Action, AbortController], unknown>>();
  private readonly listeners = new Set<StateChangeListener>();
  private readonly defaults: BreakerSettings;
  private readonly errorFilter: (err: unknown) => boolean;
  private closed = false;

  constructor(private readonly opts: BreakerRegistryOptions = {}) {
    this.defaults = { ...DEFAULT_BREAKER_SETTINGS, ...opts.defaults };
    this.errorFilter = opts.errorFilter ?? isBusinessRejection;
  }

  /** Settings in force for an upstream. */
  settings(upstream: string): BreakerSettings {
    return { ...this.defaults, ...this.opts.perUpstream?.[upstream] };
  }

  /**
   * Runs `action` through the upstream's breaker. The action must honour the signal (pass it to fetch/http).
   * Rejects with BreakerOpenError without calling when open, UpstreamTimeoutError when the budget ran out.
   */
  async call<T>(upstream: string, action: (signal: AbortSignal) => Promise<T>, options: CallOptions = {}): Promise<T> {
    const breaker = this.breaker(upstream);
    const controller = new AbortController();
    const onCallerAbort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) controller.abort(options.signal.reason);
    options.signal?.addEventListener('abort', onCallerAbort, { once: true });

    // The caller's deadline may be tighter than the breaker's timeout: abort before it (counted as a failure).
    let deadlineTimer: NodeJS.Timeout | undefined;
    let deadlineHit: Promise<never> | undefined;
    const budget = options.deadline !== undefined ? options.deadline - Date.now() - DEADLINE_MARGIN_MS : undefined;
    const timeoutMs = this.settings(upstream).timeoutMs;
    if (budget !== undefined && budget < timeoutMs) {
      deadlineHit = new Promise<never>((_, reject) => {
        deadlineTimer = setTimeout(() => reject(new UpstreamTimeoutError(upstream, Math.max(0, budget))), Math.max(0, budget));
      });
      deadlineHit.catch(() => undefined);
    }
    const wrapped: Action = deadlineHit
      ? (signal) => Promise.race([action(signal), deadlineHit as Promise<never>])
      : (signal) => action(signal);

    try {
      return (await breaker.fire(wrapped, controller)) as T;
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (code === 'EOPENBREAKER') throw new BreakerOpenError(upstream);
      if (code === 'ETIMEDOUT') {
        controller.abort(new UpstreamTimeoutError(upstream, timeoutMs));
        throw new UpstreamTimeoutError(upstream, timeoutMs);
      }
      if (err instanceof UpstreamTimeoutError) controller.abort(err);
      throw err;
    } finally {
      clearTimeout(deadlineTimer);
      options.signal?.removeEventListener('abort', onCallerAbort);
    }
  }

  /** Current state; an upstream never called is closed. */
  state(upstream: string): BreakerState {
    const b = this.breakers.get(upstream);
    if (!b || b.closed) return 'closed';
    return b.halfOpen ? 'half_open' : 'open';
  }

  /** True while calls are refused outright (not half-open: then one probe may pass). */
  isOpen(upstream: string): boolean {
    return this.state(upstream) === 'open';
  }

  /** Upstreams whose breaker is open right now. */
  openUpstreams(): string[] {
    return [...this.breakers.keys()].filter((u) => this.isOpen(u));
  }

  /** State of every upstream called so far, for metrics and health. */
  states(): Record<string, BreakerState> {
    const out: Record<string, BreakerState> = {};
    for (const name of [...this.breakers.keys()].sort()) out[name] = this.state(name);
    return out;
  }

  /** Subscribes to state changes; returns the unsubscribe function. */
  onStateChange(listener: StateChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops the breakers' timers. Later calls are refused. */
  shutdown(): void {
    this.closed = true;
    for (const b of this.breakers.values()) b.shutdown();
    this.breakers.clear();
    this.listeners.clear();
  }

  /** The upstream's breaker, created once. */
  private breaker(upstream: string): CircuitBreaker<[Action, AbortController], unknown> {
    if (this.closed) throw new Error('breaker registry is shut down');
    let b = this.breakers.get(upstream);
    if (b) return b;
    const s = this.settings(upstream);
    b = new CircuitBreaker<[Action, AbortController], unknown>((action: Action, controller: AbortController) => action(controller.signal), {
      name: upstream,
      timeout: s.timeoutMs,
      errorThresholdPercentage: s.errorThresholdPercentage,
      volumeThreshold: s.volumeThreshold,
      resetTimeout: s.resetTimeoutMs,
      rollingCountTimeout: s.rollingCountTimeoutMs,
      rollingCountBuckets: s.rollingCountBuckets,
      // A call the CALLER cancelled (shutdown) says nothing about the upstream's health.
      // (opossum passes the fire() arguments after the error; its typings only declare the error.)
      errorFilter: ((err: unknown, _action: Action, controller: AbortController) =>
        this.errorFilter(err) || (controller.signal.aborted && !(controller.signal.reason instanceof UpstreamTimeoutError))) as (err: unknown) => boolean,
    });
    const emit = (state: BreakerState) => {
      for (const l of this.listeners) {
        try {
          l(upstream, state);
        } catch {
          /* a broken listener must not break calls */
        }
      }
    };
    b.on('open', () => emit('open'));
    b.on('halfOpen', () => emit('half_open'));
    b.on('close', () => emit('closed'));
    this.breakers.set(upstream, b);
    return b;
  }
}
