/**
 * Busy polling while a request awaits its answer: the station's side of what nic-emulator/busy-poll.ts does for
 * the NIC, and what the bench's client does too (bench/udp-load.ts), since it stands in for the station.
 *
 * A station that sends a request and sleeps is woken by the answer. On this project's VM that wake-up is most of
 * a loopback round trip, and what it costs grows with how long the process slept, so it amplifies every µs the
 * NIC and the station spend on a packet: the few µs of the secure path's AEAD became tens of µs of round trip on
 * a busy day (docs/PERFORMANCE.md, "The client polls, as the station does"). So from each transmission of a
 * request the event loop polls (lib/poll-loop.ts) instead of sleeping, until no request awaits an answer or
 * `maxUs` have passed.
 *
 * Unlike the NIC's window it does not adapt: a request in flight is a sure sign that a datagram is coming. A NIC
 * that is slow or gone costs at most `maxUs` of CPU per transmission, and polling backs off while another process
 * needs this CPU (lib/poll-loop.ts).
 */
import { PollLoop, checkWindowUs, realClock, type BusyPollClock } from './poll-loop.js';

/** How long, in µs, a station polls after sending a request unless `--busy-poll-us` says otherwise (0: never). */
export const DEFAULT_ANSWER_POLL_US = 200;

export class AnswerPoll {
  /** Requests that await an answer (opened, not closed). */
  private awaiting = 0;
  private sentUs = -Infinity;
  /** Requests settled while polling (their answer was read without a wake-up). */
  hits = 0;
  /** Polling windows that ran out with a request still awaiting its answer. */
  misses = 0;
  private readonly loop: PollLoop;

  constructor(readonly maxUs: number, clock: BusyPollClock = realClock) {
    checkWindowUs(maxUs, 'answer-poll window');
    this.loop = new PollLoop((now) => {
      if (this.awaiting === 0) return false;
      if (now - this.sentUs < this.maxUs) return true;
      this.misses++;
      return false;
    }, clock);
  }

  /** A request starts: it awaits an answer until `close()`. */
  open(): void {
    this.awaiting++;
  }

  /** The request (or a retransmission of it) went out: poll for up to `maxUs` from now. */
  sent(): void {
    if (this.maxUs === 0 || this.awaiting === 0) return;
    this.sentUs = this.loop.clock.nowUs();
    this.loop.start(this.sentUs);
  }

  /** The request got its answer, or gave up. */
  close(): void {
    if (this.awaiting > 0) this.awaiting--;
    if (this.loop.active) this.hits++;
  }

  /** For the station daemon's status and the bench's JSON. */
  stats(): { maxUs: number; hits: number; misses: number; backoffs: number } {
    return { maxUs: this.maxUs, hits: this.hits, misses: this.misses, backoffs: this.loop.backoffs };
  }
}
