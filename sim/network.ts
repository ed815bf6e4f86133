/**
 * The simulated lab network: UDP datagrams between endpoints (address:port) with seeded loss, duplication, delay
 * (and so reordering) and partitions between hosts. Nothing leaves the process: addresses are names. A datagram is
 * delivered to whoever holds the endpoint when it arrives (a restarted station holds a new port, so what was sent
 * to its predecessor is lost, as on a real host); a paused receiver gets it when it continues (its socket buffer).
 */
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';

export interface Endpoint { address: string; port: number }
export type Receive = (bytes: Uint8Array, from: Endpoint) => void;

export interface NetFaults {
  /** Probability that a datagram is lost. */
  loss: number;
  /** Probability that it arrives twice. */
  dup: number;
  /** One-way delay, uniform in [min, max] ms: a wider range reorders more. */
  delayMs: [number, number];
}

export const CALM: NetFaults = { loss: 0, dup: 0, delayMs: [0.05, 0.2] };

export class SimNet {
  private readonly endpoints = new Map<string, { owner: string; receive: Receive }>();
  /** Host pairs that cannot reach each other ("a|b", both orders). */
  private readonly cut = new Set<string>();
  faults: NetFaults = CALM;
  readonly counters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, noEndpoint: 0, partitioned: 0 };
  /** Per path (from -> to): datagrams sent, and the highest send number delivered (to count reordering). */
  private readonly paths = new Map<string, { sent: number; delivered: number }>();
  /** Told of every datagram put on the wire (the run's nonce check). */
  onSend: ((from: Endpoint, to: Endpoint, bytes: Uint8Array) => void) | null = null;
  private nextPort = 40000;

  constructor(private readonly sched: Scheduler, private readonly rnd: Prng) {}

  register(address: string, port: number, owner: string, receive: Receive): void {
    this.endpoints.set(`${address}:${port}`, { owner, receive });
  }

  unregister(address: string, port: number): void {
    this.endpoints.delete(`${address}:${port}`);
  }

  /** A port nobody holds on `address` (ephemeral ports of stations). */
  ephemeral(address: string): number {
    for (;;) {
      const p = this.nextPort++;
      if (this.nextPort > 65000) this.nextPort = 40000;
      if (!this.endpoints.has(`${address}:${p}`)) return p;
    }
  }

  partition(a: string, b: string, on: boolean): void {
    for (const k of [`${a}|${b}`, `${b}|${a}`]) {
      if (on) this.cut.add(k);
      else this.cut.delete(k);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  send(from: Endpoint, to: Endpoint, bytes: Uint8Array): void {
    this.counters.sent++;
    const copy = new Uint8Array(bytes); // a copy (Uint8Array.from would iterate it byte by byte)
    this.onSend?.(from, to, copy);
    if (this.cut.has(`${from.address}|${to.address}`)) {
      this.counters.partitioned++;
      return;
    }
    const f = this.faults;
    if (this.rnd.chance(f.loss)) {
      this.counters.lost++;
      return;
    }
    const copies = this.rnd.chance(f.dup) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    const key = `${from.address}:${from.port}>${to.address}:${to.port}`;
    let path = this.paths.get(key);
    if (!path) this.paths.set(key, (path = { sent: 0, delivered: 0 }));
    const n = ++path.sent;
    const p = path;
    for (let i = 0; i < copies; i++) {
      const delay = f.delayMs[0] + this.rnd.next() * (f.delayMs[1] - f.delayMs[0]);
      this.sched.after(delay, 'net', () => {
        // Overtaken on its path by a datagram sent after it: reordered.
        if (n < p.delivered) this.counters.reordered++;
        else p.delivered = n;
        this.deliver(from, to, copy);
      });
    }
  }

  private deliver(from: Endpoint, to: Endpoint, bytes: Uint8Array): void {
    const ep = this.endpoints.get(`${to.address}:${to.port}`);
    if (!ep) {
      this.counters.noEndpoint++;
      return;
    }
    this.counters.delivered++;
    if (this.sched.state(ep.owner) === 'running') ep.receive(bytes, from);
    // Paused: it waits in the socket buffer until the process continues (the scheduler holds the event).
    else this.sched.after(0, ep.owner, () => this.endpoints.get(`${to.address}:${to.port}`)?.receive(bytes, from));
  }
}
