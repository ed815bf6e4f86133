/**
 * Virtual time and the run's event queue. An event belongs to a process (a station, a NIC, the network, the
 * store); a crashed process's events are dropped, a paused one's wait until it continues (SIGSTOP), in order.
 * Events at one instant run in the order they were scheduled, so a run is a pure function of its seed.
 *
 * After each event the microtasks it started (the station's async code) run to completion before the next event
 * (`step()` awaits the end of the microtask queue, `turn()`): one event and its consequences are one step, and a
 * crash can fall between any two steps.
 */
export type ProcessState = 'running' | 'paused' | 'dead';

/** An event; it is also the handle its scheduler returns (no second object per event). */
class Event {
  cancelled = false;
  constructor(public at: number, public seq: number, readonly owner: string, readonly run: () => void) {}
  cancel(): void {
    this.cancelled = true;
  }
}

/** A binary heap ordered by (at, seq). */
class Heap {
  private a: Event[] = [];
  get size(): number {
    return this.a.length;
  }
  push(e: Event): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): Event | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l], a[m])) m = l;
        if (r < a.length && before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
  peek(): Event | undefined {
    return this.a[0];
  }
}

function before(x: Event, y: Event): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

/**
 * Resolves once every microtask queued so far, and every one those queue in turn, has run: a microtask that queues a
 * process.nextTick, which Node runs only when the microtask queue is empty. (The same point as a setImmediate, without
 * a turn of the event loop and its poll for I/O: a simulated process has no I/O, and the pure cores use no timer,
 * queueMicrotask or nextTick, test/sim/pure-imports.test.ts.) A nextTick queued directly, outside a microtask, could
 * run before microtasks already queued.
 */
const turn = (): Promise<void> => new Promise((r) => queueMicrotask(() => process.nextTick(r)));

export class Scheduler {
  now = 0;
  steps = 0;
  private seq = 0;
  private readonly queue = new Heap();
  private readonly states = new Map<string, ProcessState>();
  private readonly held = new Map<string, Event[]>();
  /** Told of every step that ran (the trace, the enumerations' step counters). */
  onStep: ((owner: string) => void) | null = null;

  at(time: number, owner: string, run: () => void): { cancel(): void } {
    const e = new Event(Math.max(time, this.now), this.seq++, owner, run);
    const st = this.states.get(owner);
    if (st === 'dead') e.cancelled = true;
    else this.queue.push(e);
    return e;
  }

  after(ms: number, owner: string, run: () => void): { cancel(): void } {
    return this.at(this.now + Math.max(0, ms), owner, run);
  }

  state(owner: string): ProcessState {
    return this.states.get(owner) ?? 'running';
  }

  /** The process dies: its events are dropped, now and from now on. */
  kill(owner: string): void {
    this.states.set(owner, 'dead');
    this.held.delete(owner);
  }

  pause(owner: string): void {
    if (this.state(owner) === 'running') this.states.set(owner, 'paused');
  }

  /** The paused process goes on: what it missed runs now, in its order. */
  resume(owner: string): void {
    if (this.state(owner) !== 'paused') return;
    this.states.set(owner, 'running');
    for (const e of this.held.get(owner) ?? []) {
      e.at = this.now;
      e.seq = this.seq++;
      this.queue.push(e);
    }
    this.held.delete(owner);
  }

  /** The next event to run before `until` (dropping a dead process's, holding a paused one's), or null. */
  private next(until: number): Event | null {
    for (;;) {
      const e = this.queue.peek();
      if (!e || e.at > until) return null;
      this.queue.pop();
      if (e.cancelled) continue;
      const st = this.states.get(e.owner);
      if (st === 'dead') continue;
      if (st === 'paused') {
        const h = this.held.get(e.owner);
        if (h) h.push(e);
        else this.held.set(e.owner, [e]);
        continue;
      }
      return e;
    }
  }

  /** Run one event and what it set off; false when nothing is due before `until`. */
  async step(until: number): Promise<boolean> {
    const e = this.next(until);
    if (e === null) return false;
    this.now = e.at;
    this.steps++;
    e.run();
    await turn();
    this.onStep?.(e.owner);
    return true;
  }

  /** Run every event due up to `until`, then stand at `until` (step() in a loop, without a promise per step). */
  async runUntil(until: number, stop?: () => boolean): Promise<void> {
    for (let e = this.next(until); e !== null; e = this.next(until)) {
      this.now = e.at;
      this.steps++;
      e.run();
      await turn();
      this.onStep?.(e.owner);
      if (stop?.()) return;
    }
    this.now = Math.max(this.now, until);
  }

  /** Let promises already settled run (an action taken between events, e.g. a caller's request). */
  settle(): Promise<void> {
    return turn();
  }
}
