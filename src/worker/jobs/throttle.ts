// Progress notifications at a bounded rate: at most one per interval, the latest state always delivered.

export class ThrottledProgress<T> {
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending: T | undefined;

  constructor(
    private readonly send: (p: T) => void,
    private readonly intervalMs: number,
  ) {}

  /** `urgent`: send now whatever the interval (the first notification). */
  post(p: T, urgent = false): void {
    this.pending = p;
    const wait = this.last + this.intervalMs - performance.now();
    if (urgent || wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.pending;
    this.pending = undefined;
    if (p === undefined) return;
    this.last = performance.now();
    this.send(p);
  }
}
