/**
 * One station process in the simulator: the production station core and daemon decisions (mgmt-station/core/) with
 * a virtual env — time and timers from the scheduler, randomness from the run's PRNG, sockets on the simulated
 * network — and its own connection to the shared in-memory store, whose every call takes simulated time in two
 * steps (the transaction, then its reply), so a process can die between a commit and hearing of it.
 * A restart is a new process (a new incarnation) of the same station id.
 */
import type { MemoryStore } from '../mgmt-station/store/memory-store.js';
import type { ClusterKey } from '../mgmt-station/store/cluster-key.js';
import type { Store } from '../mgmt-station/store/store.js';
import { StationCore, type EmulatorControl } from '../mgmt-station/core/station.js';
import { DaemonCore, type DaemonTimes } from '../mgmt-station/core/daemon-core.js';
import type { DatagramHandler, IkeSocket, SecurePort, StationEnv } from '../mgmt-station/core/env.js';
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';
import type { SimNet } from './network.js';

export interface StationHooks {
  accepted(station: SimStation, bytes: Uint8Array): void;
  sessionOpened(station: SimStation, nic: string): void;
  /** A store call of this station committed (`result` is what it returned): the simulator's book of commands. */
  stored(station: SimStation, method: string, args: unknown[], result: unknown): void;
  /** Null when the run keeps no trace (nothing is formatted then). */
  trace: ((line: string) => void) | null;
}

/** Store methods that only read. */
const READS = /^(get|list|read|audit)/;

/** How long a store transaction and its reply take (ms). */
const STORE_MS = 0.2;

/**
 * `twoStep`: a store call is two steps of the process (the transaction commits, then its reply arrives), so a crash
 * can fall between them; the enumerations use that. Otherwise one step (commit and reply together): half the events.
 */
export interface StoreTiming {
  twoStep: boolean;
  /** Outbound sequence numbers a session claims at a time (small blocks make a restored store's marks matter). */
  reserveBlock?: bigint;
}

export class SimStation {
  readonly owner: string;
  readonly core: StationCore;
  readonly daemon: DaemonCore;
  readonly port: SimPort;
  private readonly endpoints: number[] = [];
  private started = false;

  constructor(
    readonly name: string,
    readonly incarnation: number,
    readonly address: string,
    private readonly sched: Scheduler,
    private readonly net: SimNet,
    rnd: Prng,
    shared: MemoryStore,
    key: ClusterKey,
    times: DaemonTimes,
    wallStart: number,
    private readonly hooks: StationHooks,
    timing: StoreTiming = { twoStep: false },
  ) {
    this.owner = `st:${name}#${incarnation}`;
    const env: StationEnv = {
      now: () => wallStart + Math.floor(sched.now),
      mono: () => sched.now,
      after: (ms, f) => sched.after(ms, this.owner, f),
      random: (n) => rnd.bytes(n),
      openIkeSocket: async (_bind, onMessage) => this.socket(onMessage),
    };
    this.port = new SimPort(address, net.ephemeral(address), net);
    this.endpoints.push(this.port.port);
    net.register(address, this.port.port, this.owner, (b, from) => this.port.dispatch(b, from));
    this.core = new StationCore({
      stationId: name, leaseMs: times.leaseMs, env,
      store: timedStore(shared.connect(key), sched, this.owner, (m, a, r) => hooks.stored(this, m, a, r), timing.twoStep),
      port: async () => this.port,
      onAccepted: (bytes) => hooks.accepted(this, bytes),
      onSessionOpen: (nic) => hooks.sessionOpened(this, nic),
      reserveBlock: timing.reserveBlock,
      log: (level, msg, fields) => hooks.trace?.(`${this.owner} ${level} ${msg} ${JSON.stringify(fields)}`),
    });
    this.daemon = new DaemonCore(this.core, times, (level, msg, fields) => hooks.trace?.(`${this.owner} ${level} ${msg} ${JSON.stringify(fields)}`));
  }

  /** Start serving: the daemon's poll rounds, heartbeat answers (its first round runs in the background). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.sched.after(0, this.owner, () => void this.daemon.start(this.port).catch((e) => this.hooks.trace?.(`${this.owner} start failed: ${(e as Error).message}`)));
  }

  private socket(onMessage: DatagramHandler): IkeSocket {
    const port = this.net.ephemeral(this.address);
    this.endpoints.push(port);
    this.net.register(this.address, port, this.owner, onMessage);
    return {
      send: (bytes, p, a) => this.net.send({ address: this.address, port }, { address: a, port: p }, bytes),
      close: async () => this.net.unregister(this.address, port),
    };
  }

  /** kill -9: the process and its sockets are gone; its store calls under way may or may not have committed. */
  crash(): void {
    this.sched.kill(this.owner);
    for (const p of this.endpoints) this.net.unregister(this.address, p);
  }

  get alive(): boolean {
    return this.sched.state(this.owner) !== 'dead';
  }
}

/** The station's secure socket: dispatch by SPI as mgmt-station/udp-mux.ts does (sync frames by the SPI they name). */
class SimPort implements SecurePort {
  private readonly handlers = new Map<number, DatagramHandler>();
  readonly poll = null;

  constructor(readonly address: string, readonly port: number, private readonly net: SimNet) {}

  register(spi: number, h: DatagramHandler): void {
    this.handlers.set(spi >>> 0, h);
  }

  unregister(spi: number): void {
    this.handlers.delete(spi >>> 0);
  }

  send(bytes: Uint8Array, port: number, address: string): void {
    this.net.send({ address: this.address, port: this.port }, { address, port }, bytes);
  }

  dispatch(b: Uint8Array, from: { address: string; port: number }): void {
    if (b.length < 8) return;
    const u32 = (o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
    const first = u32(0);
    let h: DatagramHandler | undefined;
    if (first === 0xffffffff) h = b.length > 32 ? this.handlers.get(u32(4)) : this.handlers.get(first);
    else if (b[0] === 50 && b[1] === 5) h = this.handlers.get(u32(4)) ?? this.handlers.get(first);
    else h = this.handlers.get(first);
    h?.(b, from);
  }
}

/**
 * The store as a station process sees it over a connection: each call is a transaction that commits a moment later
 * and a reply that arrives a moment after that, both steps of this process (dropped if it dies, held if paused).
 */
function timedStore(store: MemoryStore, sched: Scheduler, owner: string, committed: (method: string, args: unknown[], result: unknown) => void, twoStep: boolean): Store {
  const reply = (f: () => void) => (twoStep ? sched.after(STORE_MS, owner, f) : f());
  // The wrapper made for each method, made once (a store call looks its method up every time): kept with the method
  // it wraps, so a method that changed gets a new wrapper.
  const wrapped = new Map<string, { v: unknown; w: unknown }>();
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'constructor' || typeof prop === 'symbol') return v;
      const had = wrapped.get(prop);
      if (had !== undefined && had.v === v) return had.w;
      const w = wrap(target, prop, v as (...a: unknown[]) => Promise<unknown>);
      wrapped.set(prop, { v, w });
      return w;
    },
  }) as unknown as Store;

  function wrap(target: MemoryStore, prop: string, v: (...a: unknown[]) => Promise<unknown>): (...args: unknown[]) => Promise<unknown> {
    // Outside the enumerations a read answers within the step that asked (it changes nothing another process
    // could race with); writes keep their own step, so processes interleave around every change.
    if (!twoStep && READS.test(prop)) return (...args: unknown[]) => v.apply(target, args);
    return (...args: unknown[]) =>
      new Promise((resolve, reject) => {
        sched.after(STORE_MS, owner, () => {
          v.apply(target, args).then(
            (r) => {
              committed(prop, args, r);
              reply(() => resolve(r));
            },
            (e) => reply(() => reject(e)),
          );
        });
      });
  }
}

/** The administrator's access to the simulated NICs (the emulator's control API in a lab). */
export function simEmulator(nics: Map<string, import('./nic.js').SimNic>): EmulatorControl {
  const get = (id: string) => {
    const n = nics.get(id);
    if (!n) throw new Error(`no NIC ${id}`);
    return n;
  };
  return {
    name: 'sim',
    nic: async (id) => {
      const n = get(id);
      const st = n.machine.status() as { sa: { checkpointBlock?: number } | null; config: { securityPolicy?: string } | null };
      return { id, address: n.address, ports: { clear: 623, secure: 664, ike: 500 }, sa: st.sa, config: st.config };
    },
    setTrustAnchor: async (id, psk) => get(id).setTrustAnchor(psk),
    installSa: async (id, sa) => get(id).installSa(sa),
  };
}
