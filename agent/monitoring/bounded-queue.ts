// A bounded FIFO (a ring over a fixed array) between the request path and the statistics drain.
// `push` is O(1) and refuses instead of growing or waiting, when either the item count or the total
// weight (approximate bytes held alive) would pass its bound; the caller counts what it refused.

export class BoundedQueue<T> {
  private readonly items: Array<T | undefined>;
  private readonly weights: Float64Array;
  private head = 0;
  private count = 0;
  private held = 0;

  constructor(
    readonly capacity: number,
    readonly maxWeight: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
    this.items = new Array<T | undefined>(capacity);
    this.weights = new Float64Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Total weight of the items queued. */
  get weight(): number {
    return this.held;
  }

  /** Appends unless full (by count or by weight); returns whether it did. */
  push(item: T, weight: number): boolean {
    if (this.count === this.capacity || this.held + weight > this.maxWeight) return false;
    const at = (this.head + this.count) % this.capacity;
    this.items[at] = item;
    this.weights[at] = weight;
    this.count++;
    this.held += weight;
    return true;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined; // let it be collected
    this.held -= this.weights[this.head];
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    if (this.count === 0) this.held = 0; // no float drift across millions of pushes
    return item;
  }
}
