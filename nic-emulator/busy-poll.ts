/**
 * Adaptive busy polling of the emulator's sockets: the user-space form of what Linux does with NAPI busy
 * polling (`net.core.busy_read`) and the cpuidle-haltpoll governor.
 *
 * Between two datagrams a process normally sleeps in epoll_wait, and the next datagram has to wake it. On a
 * VM that wake-up is the largest part of a loopback round trip (an IPI to the other vCPU; docs/PERFORMANCE.md,
 * "Where the time goes", with the bench's figures). So after a datagram the event loop keeps polling
 * with zero timeout (a setImmediate chain: libuv then calls epoll_wait(0)) for a window, instead of sleeping.
 * A datagram that comes within the window is read with no wake-up of this process nor IPI from its sender.
 *
 * The window adapts as haltpoll's poll time does, so an idle or sparsely used emulator spends nothing:
 * - a datagram that arrives after polling stopped, but less than `maxUs` after the previous datagram, shows a
 *   window too short for the traffic: it doubles (from `startUs`), up to `maxUs`;
 * - a datagram later than `maxUs` after the previous one shows sparse traffic: the window halves, and below
 *   `startUs` it is 0 (no polling);
 * - a datagram within the window leaves it as it is.
 * The CPU it costs is therefore at most one window per datagram, and only while datagrams come at most `maxUs`
 * apart. On this project's VM that is about what the wake-ups it saves cost anyway: per sequential ping the
 * emulator spends about the same CPU polling as sleeping and being woken (docs/PERFORMANCE.md, `responderCpu`).
 * It is on by default, as haltpoll is on KVM guests whose kernel has it (`--busy-poll-us 200`); `--busy-poll-us 0`
 * turns it off, for a host whose CPUs are better spent elsewhere than on answering fast.
 *
 * Polling pays only on a CPU that would otherwise be idle. When another process needs this CPU (a client on the
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

/** The longest window, in µs, unless `--busy-poll-us` says otherwise (0: never poll). */
export const DEFAULT_BUSY_POLL_MAX_US = 200;
/** The largest `--busy-poll-us` accepted (0.1 s: beyond it polling is a busy loop, not a wake-up saver). */
export const MAX_BUSY_POLL_US = 100_000;
const START_US = 10;
const CHECK_EVERY_US = 10_000;
const PREEMPTED_LIMIT = 50;
const BACKOFF_US = 100_000;

export class BusyPoll {
  /** The current polling window in µs (0: the loop sleeps right after a datagram). */
  windowUs = 0;
  private lastUs = -Infinity;
  private polling = false;
  /** Datagrams that arrived while polling, that is without a wake-up. */
  hits = 0;
  /** Polling windows that ended without a datagram. */
  misses = 0;
  /** Times polling stopped because another process wanted this CPU. */
  backoffs = 0;
  private backoffUntilUs = -Infinity;
  private lastCheckUs = -Infinity;
  private lastPreemptions = 0;

  constructor(readonly maxUs: number, private readonly clock: BusyPollClock = realClock) {
    if (!Number.isInteger(maxUs) || maxUs < 0 || maxUs > MAX_BUSY_POLL_US) throw new RangeError(`busy-poll window must be an integer 0..${MAX_BUSY_POLL_US} µs, got ${maxUs}`);
  }

  /** For `GET /v1/health`. */
  stats(): { maxUs: number; windowUs: number; hits: number; misses: number; backoffs: number } {
    return { maxUs: this.maxUs, windowUs: this.windowUs, hits: this.hits, misses: this.misses, backoffs: this.backoffs };
  }

  /** Call for every datagram the process receives. */
  onDatagram(): void {
    if (this.maxUs === 0) return;
    const now = this.clock.nowUs();
    const gap = now - this.lastUs;
    this.lastUs = now;
    if (this.polling) {
      this.hits++;
      return;
    }
    if (gap <= this.maxUs) this.windowUs = Math.min(this.maxUs, Math.max(START_US, this.windowUs * 2));
    else this.windowUs = this.windowUs / 2 < START_US ? 0 : this.windowUs / 2;
    if (this.windowUs > 0 && now >= this.backoffUntilUs) {
      this.polling = true;
      if (now - this.lastCheckUs > 2 * CHECK_EVERY_US) {
        // After an idle spell, count preemptions from now on (not those of start-up or of earlier work).
        this.lastCheckUs = now;
        this.lastPreemptions = this.clock.preemptions();
      }
      this.clock.defer(this.poll);
    }
  }

  private readonly poll = (): void => {
    const now = this.clock.nowUs();
    if (now - this.lastCheckUs >= CHECK_EVERY_US) {
      const p = this.clock.preemptions();
      const preempted = p - this.lastPreemptions;
      this.lastCheckUs = now;
      this.lastPreemptions = p;
      if (preempted >= PREEMPTED_LIMIT) {
        this.backoffs++;
        this.backoffUntilUs = now + BACKOFF_US;
        this.polling = false;
        return;
      }
    }
    if (now - this.lastUs < this.windowUs) {
      this.clock.defer(this.poll);
      return;
    }
    this.polling = false;
    this.misses++;
  };
}

const realClock: BusyPollClock = {
  nowUs: () => performance.now() * 1000,
  defer: (fn) => void setImmediate(fn),
  preemptions: () => process.resourceUsage().involuntaryContextSwitches,
};
