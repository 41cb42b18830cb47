/**
 * Loads asked for within one turn of the event loop, answered by one call: the work items of a batch each read their
 * row, and MariaDB sees one `SELECT … WHERE id IN (…)` instead of one round trip per item.
 */
export class TickBatch<K, V> {
  private waiting: Array<{ readonly key: K; readonly resolve: (v: V | undefined) => void; readonly reject: (err: unknown) => void }> = [];

  /** `loadMany` answers for every key it was given: found ones in the map, missing ones left out. */
  constructor(
    private readonly loadMany: (keys: readonly K[]) => Promise<ReadonlyMap<K, V>>,
    private readonly maxKeys = 200,
  ) {}

  load(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ key, resolve, reject });
      if (this.waiting.length === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const all = this.waiting;
    this.waiting = [];
    for (let i = 0; i < all.length; i += this.maxKeys) {
      const part = all.slice(i, i + this.maxKeys);
      try {
        const found = await this.loadMany([...new Set(part.map((w) => w.key))]);
        for (const w of part) w.resolve(found.get(w.key));
      } catch (err) {
        for (const w of part) w.reject(err);
      }
    }
  }
}
