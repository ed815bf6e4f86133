/**
 * The mechanics of user-space busy polling, shared by the emulator (nic-emulator/busy-poll.ts: after a datagram,
 * for the next one) and the station (lib/answer-poll.ts: while a request awaits its answer).
 *
 * A process that sleeps in epoll_wait has to be woken by the next datagram; on a VM that wake-up (an IPI to a
 * halted vCPU) is the largest part of a loopback round trip (docs/PERFORMANCE.md). While `keepPolling(nowUs)`
 * says so, a setImmediate chain keeps libuv's poll phase at epoll_wait with zero timeout, so a datagram that
 * comes meanwhile is read without a wake-up. It is the user-space form of Linux's `SO_BUSY_POLL` /
 * `net.core.busy_read` and of the cpuidle-haltpoll governor.
 *
 * Polling pays only on a CPU that would otherwise be idle. When another process needs this CPU (the peer on the
 * same CPU, `npm run bench -- --pin same`), it preempts the polling loop, and polling would only delay that
 * process. So while polling, every `CHECK_EVERY_US` the involuntary context switches of this process are read
 * (getrusage); `PREEMPTED_LIMIT` or more since the last check stop polling for `BACKOFF_US`.
 */

export interface BusyPollClock {
  /** Monotonic time in microseconds. */
  nowUs(): number;
  /** Run `fn` after the event loop's next poll for I/O (setImmediate). */
  defer(fn: () => void): void;
  /** Involuntary context switches of this process so far (getrusage ru_nivcsw). */
  preemptions(): number;
}

/** The largest polling window accepted (0.1 s: beyond it polling is a busy loop, not a wake-up saver). */
export const MAX_BUSY_POLL_US = 100_000;

/** `us` if it is a polling window this file accepts (a whole number 0..MAX_BUSY_POLL_US µs); RangeError naming `what` otherwise. */
export function checkWindowUs(us: number, what: string): number {
  if (!Number.isInteger(us) || us < 0 || us > MAX_BUSY_POLL_US) throw new RangeError(`${what} must be a whole number 0..${MAX_BUSY_POLL_US} µs, got ${us}`);
  return us;
}
const CHECK_EVERY_US = 10_000;
const PREEMPTED_LIMIT = 50;
const BACKOFF_US = 100_000;

export class PollLoop {
  /** Times polling stopped because another process wanted this CPU. */
  backoffs = 0;
  private running = false;
  private backoffUntilUs = -Infinity;
  private lastCheckUs = -Infinity;
  private lastPreemptions = 0;

  /** `keepPolling` is asked before every poll step; false ends the chain until the next `start()`. */
  constructor(private readonly keepPolling: (nowUs: number) => boolean, readonly clock: BusyPollClock = realClock) {}

  /** True while the chain runs. */
  get active(): boolean {
    return this.running;
  }

  /** Start polling, unless it already runs or is backing off. */
  start(nowUs: number): void {
    if (this.running || nowUs < this.backoffUntilUs) return;
    this.running = true;
    if (nowUs - this.lastCheckUs > 2 * CHECK_EVERY_US) {
      // After an idle spell, count preemptions from now on (not those of start-up or of earlier work).
      this.lastCheckUs = nowUs;
      this.lastPreemptions = this.clock.preemptions();
    }
    this.clock.defer(this.step);
  }

  private readonly step = (): void => {
    const now = this.clock.nowUs();
    if (now - this.lastCheckUs >= CHECK_EVERY_US) {
      const p = this.clock.preemptions();
      const preempted = p - this.lastPreemptions;
      this.lastCheckUs = now;
      this.lastPreemptions = p;
      if (preempted >= PREEMPTED_LIMIT) {
        this.backoffs++;
        this.backoffUntilUs = now + BACKOFF_US;
        this.running = false;
        return;
      }
    }
    if (this.keepPolling(now)) this.clock.defer(this.step);
    else this.running = false;
  };
}

export const realClock: BusyPollClock = {
  nowUs: () => performance.now() * 1000,
  defer: (fn) => void setImmediate(fn),
  preemptions: () => process.resourceUsage().involuntaryContextSwitches,
};
