/**
 * The whole system in one deterministic process (DESIGN §7; after FoundationDB's simulator and TigerBeetle's VOPR):
 * N emulated NICs with their hosts, M stations on one shared store, the lab network, in virtual time. The NICs and
 * stations run the production code (firmware/nic-machine.ts, mgmt-station/core/); only their I/O is simulated.
 * A seed fixes everything: the workload (callers' commands), the faults, the network's behaviour.
 */
import { ClusterKey } from '../mgmt-station/store/cluster-key.js';
import { MemoryStore, type MemoryStoreSnapshot } from '../mgmt-station/store/memory-store.js';
import type { DaemonTimes } from '../mgmt-station/core/daemon-core.js';
import type { CommandKind } from '../mgmt-station/core/session.js';
import type { ExecutedCommand } from '../firmware/nic-machine.js';
import type { NicConfig } from '../firmware/eeprom-image.js';
import { setMutations, type MutationName } from '../common/mutation.js';
import { Prng } from './prng.js';
import { Scheduler } from './scheduler.js';
import { CALM, SimNet, type Endpoint, type NetFaults } from './network.js';
import { SimNic } from './nic.js';
import { SimStation, simEmulator } from './station.js';
import { Invariants, Violation } from './invariants.js';
import { ASF_TYPE_CODE } from '../wire/asf.js';
import { liveLease, type CommandLogEntry, type CommandRef, type Lease } from '../mgmt-station/store/store.js';
import { foldCommands } from '../mgmt-station/store/command-log.js';

function identityKey(nic: string, epoch: number, rmcpSeq: number, tag: number, type: number): string {
  return `${nic}|${epoch}|${rmcpSeq}|${tag}|${type}`;
}

export interface SimOptions {
  seed: number;
  nics?: number;
  stations?: number;
  /** Callers' commands over the run (reads are the daemons' polls). */
  commands?: number;
  /** Virtual ms of workload and faults, then the quiet phase. */
  durationMs?: number;
  policy?: 'esp' | 'esp+ah';
  /** Fault probabilities per second of virtual time; 'none' for a run without faults. */
  faults?: Partial<FaultRates> | 'none';
  mutations?: MutationName[];
  /** Keep a trace (default true; a batch run turns it off and replays a failing seed with it on). */
  trace?: boolean;
  /** Lines of trace kept for a failure report. */
  traceLines?: number;
  /** Echo the trace as it happens. */
  verbose?: boolean;
  /** The NIC's sequence checkpoint block (default: drawn per seed). */
  checkpointBlock?: number;
  /** The stations' outbound claim block (default: drawn per seed). */
  reserveBlock?: bigint;
  /** Store calls in two steps (commit, then reply): the enumerations crash between them. */
  twoStepStore?: boolean;
  /**
   * A scripted run (sim/enumerate.ts) instead of the seeded workload and faults: it drives the world through its
   * public actions; quiescing and the final checks follow as in any run.
   */
  scenario?: (w: World) => Promise<void>;
  /** Daemon timings other than the simulator's defaults. */
  times?: Partial<DaemonTimes>;
}

export interface FaultRates {
  crash: number;
  pause: number;
  nicPower: number;
  cable: number;
  host: number;
  partition: number;
  net: number;
  restore: number;
  tamper: number;
  /** An attacker on the lab network sends a datagram it captured earlier (on the secure port) again. */
  replay: number;
}

export const DEFAULT_FAULTS: FaultRates = { crash: 0.05, pause: 0.05, nicPower: 0.04, cable: 0.04, host: 0.05, partition: 0.04, net: 0.05, restore: 0.03, tamper: 0.01, replay: 0.1 };
const NO_FAULTS: FaultRates = { crash: 0, pause: 0, nicPower: 0, cable: 0, host: 0, partition: 0, net: 0, restore: 0, tamper: 0, replay: 0 };

export interface SimResult {
  seed: number;
  ok: boolean;
  violation: string | null;
  trace: string[];
  steps: number;
  virtualMs: number;
  counts: Record<string, number>;
}

// First-come sharing: the simulator's stations are a primary and its backups, and its pinned seeds (mutation check)
// replay traces of that; balanced sharing (rendezvous, hand-overs) is covered by test/e2e/station-cluster.test.ts.
const TIMES: DaemonTimes = { refreshIntervalS: 15, maxDownTimeS: 0, lifetimeS: Infinity, pollIntervalMs: 2000, timeoutMs: 3000, leaseMs: 5000, sharing: 'first-come' };
/** Virtual ms the system gets to settle before a NIC that does not answer is a liveness violation. */
const QUIESCE_MS = 30_000;
/** Datagrams the attacker keeps. */
const CAPTURE_RING = 256;
const KINDS: readonly CommandKind[] = ['reset', 'power-up', 'power-down', 'power-cycle'];
const WALL_START = 1_800_000_000_000;

export class World {
  readonly sched = new Scheduler();
  readonly rnd: Prng;
  readonly net: SimNet;
  readonly key = ClusterKey.fromHex('5a'.repeat(32), 'sim');
  readonly store = new MemoryStore(this.key);
  readonly nics = new Map<string, SimNic>();
  readonly stations = new Map<string, SimStation>();
  readonly inv = new Invariants();
  readonly counts: Record<string, number> = {};
  readonly storeSnaps: { at: number; snap: MemoryStoreSnapshot; clean: Set<string> }[] = [];
  readonly eepromSnaps = new Map<string, { at: number; image: Uint8Array }[]>();
  private failure: Violation | null = null;
  private readonly captured: { from: Endpoint; to: Endpoint; bytes: Uint8Array }[] = [];
  private capturedAt = 0;
  private incarnations = new Map<string, number>();
  private readonly rates: FaultRates;
  /** Which side this run restores (one per run: both at once is outside what any mechanism can cover). */
  private readonly restoreKind: 'store' | 'eeprom';
  readonly profile: { policy: 'esp' | 'esp+ah'; checkpointBlock: number; reserveBlock: bigint };
  private readonly faultRnd: Prng;
  private readonly workRnd: Prng;
  private readonly psk: Uint8Array;

  constructor(readonly o: SimOptions) {
    this.trace = o.trace === false ? null : (l) => this.log(l);
    this.rnd = new Prng(o.seed);
    this.net = new SimNet(this.sched, this.rnd.split());
    this.faultRnd = this.rnd.split();
    this.workRnd = this.rnd.split();
    this.psk = this.rnd.bytes(32);
    this.rates = o.faults === 'none' ? NO_FAULTS : { ...DEFAULT_FAULTS, ...(o.faults ?? {}) };
    this.restoreKind = this.faultRnd.chance(0.5) ? 'store' : 'eeprom';
    // What varies from seed to seed besides the schedule: the SA policy, and how far ahead the NIC and the stations
    // reserve sequence numbers (small blocks make a restored backup's marks fall below numbers already used).
    const p = this.rnd.split();
    this.profile = {
      policy: o.policy ?? (p.chance(0.5) ? 'esp' : 'esp+ah'),
      checkpointBlock: o.checkpointBlock ?? p.pick([8, 64, 16384, 16384]),
      reserveBlock: o.reserveBlock ?? p.pick([8n, 64n, 1024n, 1024n]),
    };
    setMutations(o.mutations ?? []);
    this.net.onSend = (from, to, bytes) => {
      const toNic = this.nicAt(to.address);
      const nic = toNic ?? this.nicAt(from.address);
      if (!nic || (to.port !== 664 && from.port !== 664)) return;
      this.check(() => this.inv.packet(nic.address, toNic !== undefined, bytes));
      // What an attacker on the lab network captures (a ring of the latest datagrams on the secure port).
      if (this.captured.length < CAPTURE_RING) this.captured.push({ from, to, bytes });
      else this.captured[this.capturedAt++ % CAPTURE_RING] = { from, to, bytes };
    };
    const config: NicConfig = { securityPolicy: this.profile.policy, clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' };
    for (let i = 1; i <= (o.nics ?? 2); i++) {
      const id = `nic-${i}`;
      const nic = new SimNic(id, `127.90.0.${i}`, this.sched, this.net, this.rnd.split(), config, 300, this.profile.checkpointBlock, {
        executed: (n, e) => this.executed(n, e),
        accepted: (n, b) => this.check(() => this.inv.accept(n.id, b)),
        trace: this.trace,
      });
      this.nics.set(id, nic);
      this.eepromSnaps.set(id, []);
    }
    for (let i = 0; i < (o.stations ?? 2); i++) this.startStation(String.fromCharCode(65 + i));
  }

  private nicAt(address: string): SimNic | undefined {
    for (const n of this.nics.values()) if (n.address === address) return n;
    return undefined;
  }

  /**
   * The trace (null when off: a batch run keeps none, and a failing seed is replayed with it on). Lines are built
   * only when it is on (`this.trace?.(...)` does not evaluate its argument otherwise).
   */
  readonly trace: ((line: string) => void) | null;
  /** The last lines of the trace (a ring of `traceLines`). */
  private readonly lines: string[] = [];
  private linesAt = 0;

  private log(line: string): void {
    const l = `${(this.sched.now / 1000).toFixed(4).padStart(9)} ${line}`;
    const max = this.o.traceLines ?? 400;
    if (this.lines.length < max) this.lines.push(l);
    else this.lines[this.linesAt++ % max] = l;
    if (this.o.verbose) console.log(l);
  }

  /** The kept trace, oldest first. */
  traceLines(): string[] {
    const max = this.o.traceLines ?? 400;
    if (this.lines.length < max) return [...this.lines];
    const at = this.linesAt % max;
    return [...this.lines.slice(at), ...this.lines.slice(0, at)];
  }

  private bump(k: string, n = 1): void {
    this.counts[k] = (this.counts[k] ?? 0) + n;
  }

  /** Run a check; the first violation is kept and ends the run. */
  check(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (!(e instanceof Violation)) throw e;
      if (!this.failure) {
        this.failure = e;
        this.trace?.(`VIOLATION ${e.message}`);
      }
    }
  }

  get failed(): Violation | null {
    return this.failure;
  }

  private executed(nic: SimNic, e: ExecutedCommand): void {
    this.trace?.(`${nic.id} EXECUTES ${e.command} via ${e.via} seq=${e.rmcpSeq} tag=${e.tag} epoch=${e.epoch} (host ${e.hostBefore} -> ${e.hostAfter})`);
    if (e.via !== 'secure') return;
    const cmd = this.book.byIdentity.get(identityKey(nic.id, e.epoch ?? 0, e.rmcpSeq, e.tag, ASF_TYPE_CODE[e.command as CommandKind]));
    if (cmd === undefined) {
      this.check(() => { throw new Violation('exactly-once', `${nic.id} executed ${e.command} (epoch ${e.epoch}, seq ${e.rmcpSeq}, tag ${e.tag}), which no station logged under that identity`); });
      return;
    }
    this.check(() => this.inv.executed(cmd));
  }

  /**
   * The book of commands: each gets the simulator's own number when a station logs it (appendCommand), found again
   * by the log row's hash (after a store restore, and when its caller hears back: a result names the row), and by
   * its identity on the wire (epoch, RMCP sequence, ASF tag, type) when the NIC executes it.
   */
  readonly book = { next: 0, byRow: new Map<string, number>(), byIdentity: new Map<string, number>() };

  private stored(st: SimStation, method: string, args: unknown[], result: unknown): void {
    // ASF alerts stored (docs/ALERTS.md): a retransmission is not a second row.
    if (method === 'addAlert') this.bump(result ? 'alerts stored' : 'alert duplicates');
    if (method === 'appendCommand') {
      const nic = args[0] as string;
      const e = result as CommandLogEntry;
      if (e.outcome !== 'sent') return; // logged as 'failed': never sent
      const cmd = ++this.book.next;
      this.inv.names.set(cmd, `${nic} ${e.command} (#${e.index} by ${st.owner})`);
      this.book.byRow.set(`${nic}|${e.hash}`, cmd);
      // An identity already in the book belongs to an earlier command (the store went back and gave this one the same
      // index): the NIC's record has it, and this one must not go out under it (core/session.ts syncs first).
      const idk = e.syncEpoch !== null ? identityKey(nic, e.syncEpoch, e.rmcpSeq, e.asfTag, ASF_TYPE_CODE[e.command as CommandKind]) : null;
      if (idk && !this.book.byIdentity.has(idk)) this.book.byIdentity.set(idk, cmd);
    } else if (method === 'updateOutcomeIf' && result === true && args[2] === 'sent') {
      const [nic, ref, , , , , epoch] = args as [string, CommandRef, string, number, unknown, number, number];
      const index = typeof ref === 'number' ? ref : ref.index;
      const row = this.store.raw.commandLog.get(nic)?.find((r) => r.index === index && r.kind === 'command');
      const cmd = row ? this.book.byRow.get(`${nic}|${row.hash}`) : undefined;
      if (row && cmd !== undefined) {
        this.book.byIdentity.set(identityKey(nic, epoch, row.rmcpSeq, row.asfTag, ASF_TYPE_CODE[row.command as CommandKind]), cmd);
      }
    }
  }

  startStation(name: string): SimStation {
    const n = (this.incarnations.get(name) ?? 0) + 1;
    this.incarnations.set(name, n);
    const s = new SimStation(name, n, `127.91.0.${name.charCodeAt(0) - 64}`, this.sched, this.net, this.rnd.split(), this.store, this.key, { ...TIMES, ...this.o.times }, WALL_START, {
      accepted: (st, b) => this.check(() => this.inv.accept(`station ${st.name}`, b)),
      sessionOpened: (st, nic) => this.check(() => this.inv.sessionOpened(st.owner, nic)),
      stored: (st, m, a, r) => this.stored(st, m, a, r),
      trace: this.trace,
    }, { twoStep: this.o.twoStepStore === true, reserveBlock: this.profile.reserveBlock });
    this.stations.set(name, s);
    return s;
  }

  /** Run the scheduler until `p` settles (or `maxMs` of virtual time pass); its value, or its error. */
  async drive<T>(p: Promise<T>, maxMs: number): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    let out: { ok: true; value: T } | { ok: false; error: unknown } | null = null;
    p.then((value) => (out = { ok: true, value }), (error) => (out = { ok: false, error }));
    const until = this.sched.now + maxMs;
    await this.sched.settle();
    while (!out && !this.failure && (await this.sched.step(until)));
    return out ?? { ok: false, error: new Error('did not settle in time') };
  }

  async run(): Promise<SimResult> {
    try {
      await this.setup();
      if (this.o.scenario) await this.o.scenario(this);
      else {
        const duration = this.o.durationMs ?? 20_000;
        this.scheduleWorkload(duration);
        this.scheduleFaults(duration);
        await this.sched.runUntil(this.sched.now + duration, () => this.failure !== null);
      }
      if (!this.failure) await this.quiesce();
      if (!this.failure) this.check(() => this.inv.final());
    } catch (e) {
      if (!this.failure) this.failure = new Violation('crash', (e as Error).stack ?? String(e));
    } finally {
      setMutations([]);
    }
    return {
      seed: this.o.seed, ok: this.failure === null, violation: this.failure?.message ?? null, trace: this.traceLines(),
      steps: this.sched.steps, virtualMs: this.sched.now, counts: { ...this.counts, ...this.inv.counts, ...this.net.counters },
    };
  }

  // ------------------------------------------------------------------ setup

  private async setup(): Promise<void> {
    for (const n of this.nics.values()) n.powerOn();
    const a = this.stations.get('A')!;
    const emu = simEmulator(this.nics);
    for (const id of this.nics.keys()) {
      const r = await this.drive(a.core.enroll(emu, id, this.psk, 10_000), 15_000);
      if (!r.ok) throw new Error(`enrollment of ${id} failed: ${(r.error as Error).message}`);
      this.trace?.(`A enrolled ${id}: generation ${r.value.generation}`);
    }
    for (const s of this.stations.values()) s.start();
    this.snapshotAll();
  }

  /** Backups of the side this run restores (the other is never restored, so never copied). */
  private snapshotAll(): void {
    if (this.rates.restore === 0 && this.rates.tamper === 0) return;
    if (this.restoreKind === 'store' || this.rates.tamper > 0) this.storeSnaps.push(this.storeBackup());
    if (this.restoreKind === 'eeprom') for (const n of this.nics.values()) this.eepromSnaps.get(n.id)!.push({ at: this.sched.now, image: n.snapshot() });
  }

  // ------------------------------------------------------------------ workload

  private scheduleWorkload(duration: number): void {
    const count = this.o.commands ?? 100;
    for (let i = 0; i < count; i++) {
      const at = this.sched.now + this.workRnd.next() * duration;
      const nic = this.workRnd.pick([...this.nics.keys()]);
      const kind = this.workRnd.pick(KINDS);
      const pickOwner = this.workRnd.next();
      this.sched.at(at, 'world', () => this.issue(nic, kind, pickOwner));
    }
    // Backups are taken now and then (what a restore can go back to).
    for (let t = 4000; t < duration; t += 4000) this.sched.at(this.sched.now + t, 'world', () => this.snapshotAll());
  }

  /** The NIC's lease as the store reports it: its owner's member row folded in (balanced sharing renews only that). */
  private liveLease(nic: string): Lease | undefined {
    const l = this.store.raw.leases.get(nic);
    return l && liveLease(l, this.store.raw.members);
  }

  /** A caller asks a station (the owner it knows of, mostly) to send a command. */
  private issue(nic: string, kind: CommandKind, r: number): void {
    const alive = [...this.stations.values()].filter((s) => s.alive);
    if (alive.length === 0) return;
    const lease = this.liveLease(nic);
    const owner = alive.find((s) => s.name === lease?.owner);
    const st = owner && r < 0.8 ? owner : alive[Math.floor(r * alive.length) % alive.length];
    void this.command(st, nic, kind);
  }

  /**
   * A caller sends `kind` to `nic` through station `st`; settles (never rejects) once the caller heard back and
   * what it heard was checked against what ran.
   */
  command(st: SimStation, nic: string, kind: CommandKind): Promise<void> {
    this.bump('commands');
    const id = this.counts.commands;
    this.trace?.(`caller #${id} -> ${st.owner}: ${kind} ${nic}`);
    const cmdOf = (hash: string) => this.book.byRow.get(`${nic}|${hash}`);
    return st.daemon.command(nic, kind, 4000).then(
      (res) => {
        this.trace?.(`caller #${id} <- ok ${kind} ${nic} #${res.command?.index}${res.completedBy ? ` (completed by ${res.completedBy})` : ''}`);
        const cmd = res.command ? cmdOf(res.command.hash) : undefined;
        this.check(() => {
          if (cmd === undefined) throw new Violation('exactly-once', `caller #${id} was told ${kind} ${nic} was done, but its station logged no such command`);
          this.inv.callerAcked(cmd);
        });
      },
      (e: { code?: string; message?: string; command?: { index: number; hash: string; sent: boolean } }) => {
        const code = e.code ?? 'E_INTERNAL';
        this.trace?.(`caller #${id} <- ${code} ${e.command ? `#${e.command.index} sent=${e.command.sent}` : '(not logged)'}: ${e.message?.slice(0, 160)}`);
        this.bump(`error ${code}`);
        if (!e.command) return; // never logged: it has no identity and cannot run
        const cmd = cmdOf(e.command.hash);
        if (cmd === undefined) return; // logged 'failed' (never sent)
        if (code === 'E_OUTCOME_UNKNOWN' || (code === 'E_TIMEOUT' && e.command.sent)) this.inv.callerUnknown();
        else this.check(() => this.inv.callerNotRun(cmd, code));
      },
    );
  }

  // ------------------------------------------------------------------ faults

  private scheduleFaults(duration: number): void {
    const r = this.rates;
    const total = Object.values(r).reduce((a, b) => a + b, 0);
    if (total === 0) return;
    let t = this.sched.now;
    const end = this.sched.now + duration;
    for (;;) {
      t += (-Math.log(1 - this.faultRnd.next()) / total) * 1000;
      if (t >= end) break;
      let x = this.faultRnd.next() * total;
      let kind: keyof FaultRates = 'crash';
      for (const [k, v] of Object.entries(r) as [keyof FaultRates, number][]) {
        if ((x -= v) < 0) {
          kind = k;
          break;
        }
      }
      const choice = this.faultRnd.u32();
      this.sched.at(t, 'world', () => this.fault(kind, new Prng(choice)));
    }
  }

  private fault(kind: keyof FaultRates, r: Prng): void {
    this.bump(`fault ${kind}`);
    const nic = r.pick([...this.nics.values()]);
    const alive = [...this.stations.values()].filter((s) => s.alive && this.sched.state(s.owner) === 'running');
    switch (kind) {
      case 'crash':
        if (alive.length > 0) this.crashStation(r.pick(alive), 1000 + r.next() * 4000);
        return;
      case 'pause':
        if (alive.length > 0) this.pauseStation(r.pick(alive), 500 + r.next() * 6000);
        return;
      case 'nicPower':
        this.powerLoss(nic, 200 + r.next() * 3000);
        return;
      case 'cable':
        this.cablePull(nic, 500 + r.next() * 5000);
        return;
      case 'host': {
        const ev = r.pick(['hang', 'wake', 'suspend', 'crash'] as const);
        if (nic.event(ev)) this.trace?.(`FAULT host ${ev} ${nic.id}`);
        return;
      }
      case 'partition': {
        const s = r.pick([...this.stations.values()]);
        const ms = 500 + r.next() * 5000;
        this.trace?.(`FAULT partition ${s.name} | ${nic.id} for ${Math.round(ms)} ms`);
        this.net.partition(s.address, nic.address, true);
        this.sched.after(ms, 'world', () => this.net.partition(s.address, nic.address, false));
        return;
      }
      case 'net': {
        const f: NetFaults = { loss: r.next() * 0.2, dup: r.next() * 0.1, delayMs: [0.05, 0.05 + r.next() * 20] };
        this.trace?.(`FAULT network loss ${f.loss.toFixed(2)} dup ${f.dup.toFixed(2)} delay up to ${f.delayMs[1].toFixed(1)} ms`);
        this.net.faults = f;
        this.sched.after(1000 + r.next() * 5000, 'world', () => (this.net.faults = CALM));
        return;
      }
      case 'restore':
        return this.restore(r, nic);
      case 'replay': {
        if (this.captured.length === 0) return;
        const c = r.pick(this.captured);
        this.trace?.(`FAULT attacker replays a captured datagram ${c.from.address}:${c.from.port} -> ${c.to.address}:${c.to.port} (${c.bytes.length} bytes)`);
        this.net.send(c.from, c.to, c.bytes);
        return;
      }
      case 'tamper':
        return this.tamper(r, nic.id);
    }
  }

  /** kill -9 of a station process; a new one starts `restartAfterMs` later. */
  crashStation(s: SimStation, restartAfterMs: number): void {
    this.trace?.(`FAULT kill -9 ${s.owner}`);
    s.crash();
    this.sched.after(restartAfterMs, 'world', () => {
      const n = this.startStation(s.name);
      this.trace?.(`FAULT restart ${n.owner}`);
      n.start();
    });
  }

  /** SIGSTOP of a station process for `ms`, then SIGCONT. */
  pauseStation(s: SimStation, ms: number): void {
    this.trace?.(`FAULT SIGSTOP ${s.owner} for ${Math.round(ms)} ms`);
    this.sched.pause(s.owner);
    this.sched.after(ms, 'world', () => {
      this.trace?.(`FAULT SIGCONT ${s.owner}`);
      this.sched.resume(s.owner);
    });
  }

  /** The NIC (and its host) lose power for `ms`. */
  powerLoss(nic: SimNic, ms: number): void {
    this.trace?.(`FAULT power loss ${nic.id}`);
    nic.event('power-loss');
    this.sched.after(ms, 'world', () => {
      this.trace?.(`FAULT power restore ${nic.id}`);
      nic.event('power-restore');
    });
  }

  /** The attacker sends every datagram it captured toward `nic` again (oldest first). */
  replayCapturedTo(nic: SimNic): void {
    const at = this.capturedAt % CAPTURE_RING;
    const all = this.captured.length < CAPTURE_RING ? this.captured : [...this.captured.slice(at), ...this.captured.slice(0, at)];
    const to = all.filter((c) => c.to.address === nic.address);
    this.trace?.(`FAULT attacker replays ${to.length} captured datagrams to ${nic.id}`);
    for (const c of to) this.net.send(c.from, c.to, c.bytes);
  }

  /** The NIC's cable is pulled for `ms`. */
  cablePull(nic: SimNic, ms: number): void {
    this.trace?.(`FAULT cable pull ${nic.id}`);
    nic.event('cable-pull');
    this.sched.after(ms, 'world', () => {
      this.trace?.(`FAULT cable plug ${nic.id}`);
      nic.event('cable-plug');
    });
  }

  /** The store goes back to a backup (a snapshot of it). */
  restoreStore(s: { at: number; snap: MemoryStoreSnapshot; clean: Set<string> }): void {
    this.trace?.(`FAULT store restored from the backup of t=${(s.at / 1000).toFixed(3)}`);
    this.store.restore(s.snap);
    // The logs are as they were then: edited (tainted) exactly where they were at that backup.
    this.inv.tainted.clear();
    for (const n of this.nics.keys()) if (!s.clean.has(n)) this.inv.tainted.add(n);
    // Commands pending in the backup are pending again, whatever their callers were told since.
    for (const [nic, rows] of this.store.raw.commandLog) {
      for (const c of foldCommands(nic, rows)) {
        const cmd = c.outcome === 'sent' ? this.book.byRow.get(`${nic}|${c.hash}`) : undefined;
        if (cmd !== undefined) this.inv.reopened(cmd);
      }
    }
    this.bump('restores');
  }

  /** A NIC's EEPROM file goes back to a backup (taken with the NIC on: power off, file replaced, power on). */
  restoreEeprom(nic: SimNic, s: { at: number; image: Uint8Array }): void {
    this.trace?.(`FAULT ${nic.id} EEPROM restored from the backup of t=${(s.at / 1000).toFixed(3)}`);
    nic.restore(s.image);
    this.bump('restores');
  }

  /** A backup of the store as it is now (with which NICs' logs are unedited at this moment). */
  storeBackup(): { at: number; snap: MemoryStoreSnapshot; clean: Set<string> } {
    return { at: this.sched.now, snap: this.store.snapshot(), clean: new Set([...this.nics.keys()].filter((n) => !this.inv.tainted.has(n))) };
  }

  /** Run `f` after each of the next steps (any process's), with the count of steps since this call; until it returns false. */
  eachStep(f: (k: number) => boolean): void {
    const start = this.sched.steps;
    const prev = this.sched.onStep;
    const hook = (owner: string): void => {
      prev?.(owner);
      if (this.sched.onStep === hook && !f(this.sched.steps - start)) this.sched.onStep = prev;
    };
    this.sched.onStep = hook;
  }

  /** Run the scheduler for `ms` of virtual time (stops early at a violation). */
  async runFor(ms: number): Promise<void> {
    await this.sched.runUntil(this.sched.now + ms, () => this.failure !== null);
  }

  private restore(r: Prng, nic: SimNic): void {
    if (this.restoreKind === 'store') {
      if (this.storeSnaps.length > 0) this.restoreStore(r.pick(this.storeSnaps));
    } else {
      const snaps = this.eepromSnaps.get(nic.id)!;
      if (snaps.length > 0) this.restoreEeprom(nic, r.pick(snaps));
    }
  }

  /** Someone with write access to the store but not the cluster key edits rows. */
  private tamper(r: Prng, nic: string): void {
    const raw = this.store.raw;
    const rows = raw.commandLog.get(nic);
    const kind = r.pick(['delete-row', 'edit-outcome', 'old-seq-row', 'old-sync-row'] as const);
    if ((kind === 'delete-row' || kind === 'edit-outcome') && (!rows || rows.length < 2)) return;
    switch (kind) {
      case 'delete-row':
        this.deleteLogRow(nic, r.int(rows!.length));
        return;
      case 'edit-outcome': {
        const outs = rows!.filter((x) => x.kind === 'outcome');
        if (outs.length > 0) this.editLogRow(nic, rows!.indexOf(r.pick(outs)));
        return;
      }
      case 'old-seq-row':
      case 'old-sync-row': {
        // An older version of a sealed row, from a backup: its MAC verifies (a rollback a MAC cannot see).
        const s = this.storeSnaps.length > 0 ? r.pick(this.storeSnaps).snap : null;
        if (!s) return;
        if (kind === 'old-sync-row') {
          const old = s.syncEpochs.get(nic);
          if (old) raw.syncEpochs.set(nic, { ...old });
          else raw.syncEpochs.delete(nic);
        } else {
          const old = s.seqCheckpoints.get(nic);
          if (old) raw.seqCheckpoints.set(nic, new Map([...old].map(([g, row]) => [g, { ...row }])));
        }
        this.trace?.(`FAULT tamper: ${nic} ${kind} rolled back to an older sealed version`);
        return;
      }
    }
  }

  /** Someone with write access to the store but not the cluster key deletes the `i`-th row of `nic`'s log. */
  deleteLogRow(nic: string, i: number): void {
    const rows = this.store.raw.commandLog.get(nic)!;
    this.trace?.(`FAULT tamper: ${nic} command log row #${rows[i].index} (${rows[i].kind} ${rows[i].outcome}) deleted`);
    rows.splice(i, 1);
    this.taint(nic);
  }

  /** ... or changes its outcome (to 'sent', which invites a re-send; a 'sent' one to 'unknown'). */
  editLogRow(nic: string, i: number): void {
    const row = this.store.raw.commandLog.get(nic)![i];
    const to = row.outcome === 'sent' ? 'unknown' : 'sent';
    this.trace?.(`FAULT tamper: ${nic} command log row #${row.index} outcome ${row.outcome} -> ${to}`);
    row.outcome = to;
    this.taint(nic);
  }

  private taint(nic: string): void {
    this.inv.tainted.add(nic);
    void this.store.auditCommandLog(nic).then((a) => {
      this.trace?.(`audit ${nic}: ${a.ok ? 'ok' : `first bad entry ${a.firstBadIndex}: ${a.problem}`}`);
      if (a.ok) this.check(() => { throw new Violation('audit', `${nic}'s edited command log audits ok`); });
    });
  }

  // ------------------------------------------------------------------ the end

  /**
   * Quiet the system (network healed, every process and NIC up, hosts up), let it settle, then every NIC must answer
   * its owner under a common SA: a read through the station that holds its lease (or any, if none does). A NIC whose
   * log was edited must refuse with E_STORE instead (the session does not open on it).
   */
  private async quiesce(): Promise<void> {
    this.trace?.('QUIESCE');
    this.net.heal();
    this.net.faults = CALM;
    for (const s of [...this.stations.values()]) {
      if (!s.alive) this.startStation(s.name).start();
      else this.sched.resume(s.owner);
    }
    for (const n of this.nics.values()) {
      n.event('power-restore');
      n.event('cable-plug');
      for (const ev of ['wake', 'power-up'] as const) n.event(ev);
    }
    // Every few seconds each NIC is read through its owner; the run ends once all answer (or, with an edited log,
    // refuse with E_STORE as they must). A NIC that does not within QUIESCE_MS is a liveness violation.
    const end = this.sched.now + QUIESCE_MS;
    const pending = new Map<string, { owner: string; error: unknown }>();
    for (const nic of this.nics.keys()) pending.set(nic, { owner: '', error: null });
    // The first look comes after the callers' timeouts (4 s): every command issued has been answered by then.
    let wait = 5000;
    while (pending.size > 0 && !this.failure) {
      await this.sched.runUntil(Math.min(end, this.sched.now + wait), () => this.failure !== null);
      wait = 3000;
      // A command still in flight when the quiet began may have turned a host off since: the lab brings it back
      // (a station that lost its SA, with a store restored from a backup, needs the host's IKE to key again).
      for (const n of this.nics.values()) for (const ev of ['wake', 'power-up'] as const) n.event(ev);
      if (this.failure) return;
      for (const nic of [...pending.keys()]) {
        const lease = this.liveLease(nic);
        const live = lease && lease.owner && lease.expiresAt > WALL_START + this.sched.now ? this.stations.get(lease.owner) : undefined;
        const st = live ?? this.stations.get('A')!;
        const r = await this.drive(st.daemon.read(nic, 'system-state-request', 3000), 10_000);
        const code = r.ok ? null : (r.error as { code?: string }).code;
        if (r.ok || (this.inv.tainted.has(nic) && code === 'E_STORE')) pending.delete(nic);
        else pending.set(nic, { owner: st.owner, error: r.error });
      }
      if (this.sched.now >= end) break;
    }
    for (const [nic, { owner, error }] of pending) {
      const code = (error as { code?: string }).code;
      this.check(() => { throw new Violation('liveness', `after quiescing, ${nic} does not answer ${owner}: ${code} ${(error as Error).message}`); });
    }
  }
}
