/**
 * Adaptive busy polling of the emulator's sockets: the user-space form of what Linux does with NAPI busy
 * polling (`net.core.busy_read`) and the cpuidle-haltpoll governor.
 *
 * After a datagram the event loop keeps polling with zero timeout for a window instead of sleeping
 * (lib/poll-loop.ts), so the next datagram, if it comes within the window, is read with no wake-up of this
 * process nor IPI from its sender (docs/PERFORMANCE.md, "Where the time goes", with the bench's figures).
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
 * Polling stops while another process preempts it (lib/poll-loop.ts, which runs the polling for this file and for
 * the station's lib/answer-poll.ts).
 */
import { PollLoop, checkWindowUs, realClock, type BusyPollClock } from '../lib/poll-loop.js';

/** The longest window, in µs, unless `--busy-poll-us` says otherwise (0: never poll). */
export const DEFAULT_BUSY_POLL_MAX_US = 200;
const START_US = 10;

export class BusyPoll {
  /** The current polling window in µs (0: the loop sleeps right after a datagram). */
  windowUs = 0;
  private lastUs = -Infinity;
  /** Datagrams that arrived while polling, that is without a wake-up. */
  hits = 0;
  /** Polling windows that ended without a datagram. */
  misses = 0;
  private readonly loop: PollLoop;

  constructor(readonly maxUs: number, clock: BusyPollClock = realClock) {
    checkWindowUs(maxUs, 'busy-poll window');
    this.loop = new PollLoop((now) => {
      if (now - this.lastUs < this.windowUs) return true;
      this.misses++;
      return false;
    }, clock);
  }

  /** Times polling stopped because another process wanted this CPU. */
  get backoffs(): number {
    return this.loop.backoffs;
  }

  /** For `GET /v1/health`. */
  stats(): { maxUs: number; windowUs: number; hits: number; misses: number; backoffs: number } {
    return { maxUs: this.maxUs, windowUs: this.windowUs, hits: this.hits, misses: this.misses, backoffs: this.backoffs };
  }

  /** Call for every datagram the process receives. */
  onDatagram(): void {
    if (this.maxUs === 0) return;
    const now = this.loop.clock.nowUs();
    const gap = now - this.lastUs;
    this.lastUs = now;
    if (this.loop.active) {
      this.hits++;
      return;
    }
    if (gap <= this.maxUs) this.windowUs = Math.min(this.maxUs, Math.max(START_US, this.windowUs * 2));
    else this.windowUs = this.windowUs / 2 < START_US ? 0 : this.windowUs / 2;
    if (this.windowUs > 0) this.loop.start(now);
  }
}
