/** A fake clock for lib/poll-loop.ts: time moves only when a test runs the deferred poll steps. */
import type { BusyPollClock } from '../../lib/poll-loop.js';

export class FakeClock implements BusyPollClock {
  now = 1_000_000;
  switches = 0;
  /** Involuntary switches added per deferred poll step (another process preempting the loop). */
  switchesPerStep = 0;
  private queue: (() => void)[] = [];
  steps = 0;
  nowUs(): number {
    return this.now;
  }
  defer(fn: () => void): void {
    this.queue.push(fn);
  }
  preemptions(): number {
    return this.switches;
  }
  /** Let the loop run (each poll step takes `stepUs`) until `untilUs`, or until polling stops. */
  run(untilUs: number, stepUs = 1): void {
    while (this.queue.length > 0 && this.now < untilUs) {
      this.now += stepUs;
      this.switches += this.switchesPerStep;
      this.steps++;
      this.queue.shift()!();
    }
    this.now = Math.max(this.now, untilUs);
  }
  get polling(): boolean {
    return this.queue.length > 0;
  }
}
