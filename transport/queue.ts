/**
 * A bounded FIFO. When full, a push drops the oldest item and counts it: new usage is worth more than old usage that
 * could not be delivered. A ring buffer, so push and shift cost the same at any size.
 */
export class BoundedQueue<T> {
  private readonly items: Array<T | undefined>;
  private head = 0;
  private count = 0;
  dropped = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.count === this.capacity) this.dropOldest();
    this.items[(this.head + this.count) % this.capacity] = item;
    this.count++;
  }

  /** Removes and returns up to `max` items from the front. */
  take(max: number): T[] {
    const n = Math.min(max, this.count);
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) {
      out[i] = this.items[this.head] as T;
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
    }
    this.count -= n;
    return out;
  }

  /** Drops the oldest item, and counts it. */
  dropOldest(): void {
    if (this.count === 0) return;
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    this.dropped++;
  }
}
