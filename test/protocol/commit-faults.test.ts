/**
 * DESIGN §2.5, tested exhaustively: for every commit message (SA_READY request, its response,
 * SA_ACK request, SA_CONFIRM response) x {dropped once, dropped always, duplicated, delayed past
 * the next message, reordered with the next message}, and for a crash of the host agent, the
 * NIC or the station after every step of the exchange (short and long outages), station and NIC
 * always share a working SA; once everything is up again one more refresh makes both use the
 * newest SA. Run for the commit after IKE_AUTH and after CREATE_CHILD_SA, with continuous
 * station traffic and with only the §2.8 dummy packet after each switch.
 *
 * Model: the NIC is NicDouble (slots persisted in EEPROM), and again the real firmware (FirmwareNic:
 * SaDatabase on an EEPROM image, rebooted from it after a crash); the host agent keeps nothing but what
 * the NIC holds (a restart calls recover()); the station keeps only its persisted outbound SA;
 * a NIC write that fails (NIC down) crashes the host agent (effects contract, effects.ts).
 */
import assert from 'node:assert/strict';
import { hex } from '../../common/bytes.js';
import type { SaPair } from '../../wire/sa.js';
import { describeMessage } from '../../protocol/ike/describe.js';
import type { IkeEffect } from '../../protocol/ike/effects.js';
import { IkeInitiator } from '../../protocol/ike/ike-initiator.js';
import { decodeHeader } from '../../protocol/ike/ike-message.js';
import { IkeResponder } from '../../protocol/ike/ike-responder.js';
import { NicDouble } from './helpers/nic-double.js';
import { FirmwareNic } from './helpers/firmware-nic.js';
import { PSK } from './helpers/pair.js';
import { seededRandom } from './helpers/prng.js';

type MsgKind = 'READY-req' | 'READY-resp' | 'ACK-req' | 'CONFIRM-resp' | 'other';
type FaultKind = 'drop' | 'drop-all' | 'duplicate' | 'delay' | 'reorder';
type Party = 'station' | 'host' | 'nic';
type Flow = 'auth' | 'rekey';
type Traffic = 'continuous' | 'switch-only';

interface Datagram {
  to: 'host' | 'station';
  bytes: Uint8Array;
}

interface Case {
  /** Which NIC: the model of DESIGN §2.5 or the real firmware SA database on an EEPROM image. */
  nic: 'model' | 'firmware';
  flow: Flow;
  traffic: Traffic;
  fault?: { target: MsgKind; kind: FaultKind };
  crash?: { who: Party; atStep: number; downMs: number };
}

const PHASE_LIMIT_MS = 120_000;

class World {
  now = 0;
  net: Datagram[] = [];
  held: { d: Datagram; mode: 'delay' | 'reorder' } | null = null;
  readonly nic: NicDouble | FirmwareNic;
  station: IkeInitiator | null = null;
  host: IkeResponder | null = null;
  down: Record<Party, number | null> = { station: null, host: null, nic: null };
  /** The station's persisted outbound SA (its store) and what it sends on. */
  stored: SaPair | null = null;
  outbound: SaPair | null = null;
  readonly keys = new Map<string, { skEi: Uint8Array; skEr: Uint8Array }>();
  fault: { target: MsgKind; kind: FaultKind; fired: boolean } | null = null;
  crash: { who: Party; atStep: number; downMs: number; fired: boolean } | null = null;
  steps = 0;
  switches = 0;
  restarts = 0;
  readonly violations: string[] = [];
  readonly trace: string[] = [];

  constructor(readonly c: Case, readonly seed: string) {
    this.nic = c.nic === 'firmware' ? new FirmwareNic() : new NicDouble();
  }

  newStation(): IkeInitiator {
    return new IkeInitiator({ random: seededRandom(`${this.seed}/station/${this.restarts++}`), psk: PSK, id: 'station.lab', peerId: 'nic.lab' });
  }

  newHost(): IkeResponder {
    return new IkeResponder({ random: seededRandom(`${this.seed}/host/${this.restarts++}`), psk: PSK, id: 'nic.lab', nextGeneration: this.nic.maxGeneration + 1 });
  }

  classify(d: Datagram): MsgKind {
    const h = decodeHeader(d.bytes);
    const k = this.keys.get(hex(h.spiI));
    const s = describeMessage(d.bytes, k);
    if (!s.startsWith('INFORMATIONAL')) return 'other';
    if (d.to === 'station' && s.includes('request') && s.includes('N(SA_READY)')) return 'READY-req';
    if (d.to === 'host' && s.includes('response') && s.includes('{ }')) return 'READY-resp';
    if (d.to === 'host' && s.includes('request') && s.includes('N(SA_ACK)')) return 'ACK-req';
    if (d.to === 'station' && s.includes('response') && s.includes('N(SA_CONFIRM)')) return 'CONFIRM-resp';
    return 'other';
  }

  enqueue(d: Datagram): void {
    const f = this.fault;
    if (f && (!f.fired || f.kind === 'drop-all') && this.classify(d) === f.target) {
      f.fired = true;
      this.trace.push(`fault ${f.kind} ${f.target}`);
      if (f.kind === 'drop' || f.kind === 'drop-all') return;
      if (f.kind === 'duplicate') {
        this.net.push(d, d);
        return;
      }
      this.held = { d, mode: f.kind };
      return;
    }
    this.net.push(d);
    if (this.held?.mode === 'reorder') {
      this.net.push(this.held.d); // swapped with the next message sent
      this.held = null;
    }
  }

  stationDo(fx: IkeEffect[]): void {
    for (const e of fx) {
      if (e.kind === 'send') this.enqueue({ to: 'host', bytes: e.bytes });
      else if (e.kind === 'switch-outbound') {
        this.stored = e.sa; // persist first, then use (effects.ts)
        this.outbound = e.sa;
        this.switches++;
        this.packet(); // §2.8 "dummy ESP message on a newly created ESP SA"
      }
    }
    const k = this.station?.ikeKeys();
    if (k) this.keys.set(hex(k.spiI), { skEi: k.skEi, skEr: k.skEr });
  }

  hostDo(fx: IkeEffect[]): void {
    for (const e of fx) {
      let ok = true;
      if (e.kind === 'nic-write-pending') ok = this.nic.writePending(e.sa);
      else if (e.kind === 'nic-commit') ok = this.nic.commit(e.generation);
      else if (e.kind === 'nic-discard') ok = this.nic.discard(e.generation);
      else if (e.kind === 'send') this.enqueue({ to: 'station', bytes: e.bytes });
      if (!ok) {
        // The NIC write failed: the rest of the batch must not happen; the agent restarts from EEPROM.
        this.trace.push(`host crash: ${e.kind} failed`);
        this.host = null;
        this.down.host = Math.max(this.now, this.down.nic ?? this.now);
        return;
      }
    }
  }

  /** A station packet on the outbound SA (RMCP over ESP); the NIC authenticates it or not. */
  packet(): boolean {
    if (!this.outbound) return false;
    return this.nic.authenticate(this.outbound);
  }

  check(where: string): void {
    if (this.outbound && !this.nic.accepts(this.outbound)) {
      this.violations.push(`${where}: station sends generation ${this.outbound.generation}, NIC holds active ${this.nic.active?.generation} previous ${this.nic.previous?.generation}`);
    }
  }

  doCrash(who: Party, downMs: number): void {
    this.trace.push(`crash ${who} at step ${this.steps} for ${downMs} ms`);
    if (who === 'station') {
      this.station = null;
      this.outbound = this.stored;
    } else if (who === 'host') {
      this.host = null;
    } else {
      this.nic.up = false;
    }
    this.down[who] = this.now + downMs;
  }

  restartDue(): void {
    if (this.down.nic !== null && this.down.nic <= this.now) {
      this.nic.up = true;
      this.down.nic = null;
    }
    if (this.down.station !== null && this.down.station <= this.now) {
      this.station = this.newStation();
      this.outbound = this.stored;
      this.down.station = null;
    }
    if (this.down.host !== null && this.down.host <= this.now && this.nic.up) {
      this.host = this.newHost();
      this.down.host = null;
      this.hostDo(this.host.recover(this.nic.pending ? this.nic.pending.generation : null));
    }
  }

  nextTime(): number | null {
    const ts = [this.station?.pollTimeout() ?? null, this.host?.pollTimeout() ?? null, this.down.station, this.down.host, this.down.nic];
    const live = ts.filter((x): x is number => x !== null);
    return live.length ? Math.max(this.now, Math.min(...live)) : null;
  }

  /** One event: a delivery, or the next deadline. Returns false when nothing is left to happen. */
  step(limit: number): boolean {
    const d = this.net.shift();
    if (d) {
      const to = d.to === 'host' ? this.host : this.station;
      if (to) {
        const fx = to.receive(d.bytes, this.now);
        if (d.to === 'host') this.hostDo(fx);
        else this.stationDo(fx);
      }
      if (this.held?.mode === 'delay') {
        this.net.push(this.held.d); // delivered after the next message
        this.held = null;
      }
    } else {
      const t = this.nextTime();
      if (t === null || t > limit) {
        if (!this.held) return false;
        this.net.push(this.held.d);
        this.held = null;
        return true;
      }
      this.now = t;
      this.restartDue();
      if (this.station) this.stationDo(this.station.handleTimeout(this.now));
      if (this.host) this.hostDo(this.host.handleTimeout(this.now));
    }
    this.steps++;
    return true;
  }

  afterStep(where: string): void {
    const c = this.crash;
    if (c && !c.fired && this.steps === c.atStep) {
      c.fired = true;
      this.doCrash(c.who, c.downMs);
    }
    if (this.c.traffic === 'continuous' && this.nic.up) this.packet();
    this.check(where);
  }

  /** Runs until nothing is in flight, no timer is armed and everyone is back up. */
  run(label: string): void {
    const limit = this.now + PHASE_LIMIT_MS;
    this.afterStep(`${label} step 0`);
    while (this.step(limit)) this.afterStep(`${label} step ${this.steps}`);
    this.now = Math.max(this.now, ...Object.values(this.down).filter((x): x is number => x !== null));
    this.restartDue();
  }

  /** The station's refresh as its shell does it: prove the current SA, then refresh or reconnect. */
  startRefresh(): void {
    if (this.outbound && !this.packet()) this.violations.push('the NIC rejects the station SA before a refresh');
    if (this.station && this.station.canRefresh) this.stationDo(this.station.refresh(this.now));
    else {
      this.station = this.newStation();
      this.stationDo(this.station.connect(this.now));
    }
  }
}

function manualSa(generation: number, seed: string): SaPair {
  const r = seededRandom(seed);
  return {
    generation,
    transform: 'aes-gcm-16',
    esn: false,
    policy: 'esp',
    toNic: { spi: 0x1000 + generation, encKey: r(20), ahSpi: 0, ahKey: new Uint8Array(0) },
    fromNic: { spi: 0x2000 + generation, encKey: r(20), ahSpi: 0, ahKey: new Uint8Array(0) },
    origin: 'manual',
  };
}

/** Builds the world up to the start of the phase under test (fault-free). */
function setup(c: Case, seed: string): World {
  const w = new World(c, seed);
  const enrolled = manualSa(1, seed + '/manual');
  w.nic.install(enrolled);
  w.stored = w.outbound = enrolled;
  w.station = w.newStation();
  w.host = w.newHost();
  if (c.flow === 'rekey') {
    w.stationDo(w.station.connect(w.now));
    w.run('setup');
    assert.equal(w.outbound?.generation, 2, 'setup commits generation 2');
  }
  w.steps = 0;
  return w;
}

function startPhase(w: World): void {
  if (w.c.flow === 'auth') w.stationDo((w.station as IkeInitiator).connect(w.now));
  else w.startRefresh();
}

/** Runs one case; returns the number of steps of its phase. */
function runCase(c: Case, seed: string): number {
  const w = setup(c, seed);
  if (c.fault) w.fault = { ...c.fault, fired: false };
  if (c.crash) w.crash = { ...c.crash, fired: false };
  startPhase(w);
  w.run('phase');
  const phaseSteps = w.steps;
  if (c.fault) assert.ok(w.fault?.fired, `fault never applied: ${JSON.stringify(c)}`);
  if (c.crash) assert.ok(w.crash?.fired, `crash never happened: ${JSON.stringify(c)}`);
  w.fault = null;
  w.crash = null;

  // Everything is up again: one more refresh (reconnecting if the IKE SA is gone) converges.
  const before = w.switches;
  for (let attempt = 0; attempt < 3 && w.switches === before; attempt++) {
    w.startRefresh();
    w.run(`converge ${attempt}`);
  }
  const ctx = () => `${JSON.stringify(c)}\n  ${w.trace.join('\n  ')}`;
  assert.deepEqual(w.violations, [], ctx());
  assert.ok(w.switches > before, `no convergence: ${ctx()}`);
  const sa = w.outbound as SaPair;
  assert.equal(sa.toNic.spi, w.nic.active?.toNic.spi, `station and NIC disagree on the active SA: ${ctx()}`);
  assert.equal(hex(sa.fromNic.encKey), hex((w.nic.active as SaPair).fromNic.encKey));
  assert.equal(sa.generation, w.nic.maxGeneration, `the station does not use the newest SA: ${ctx()}`);
  assert.equal(w.nic.pending, null, `a pending SA was left behind: ${ctx()}`);
  assert.equal(w.packet(), true);
  for (const m of [w.station, w.host]) assert.equal(m?.drops.internal, undefined, 'no internal errors');
  return phaseSteps;
}

describe('two-phase SA commit under faults (DESIGN §2.5, exhaustive)', () => {
  const targets: MsgKind[] = ['READY-req', 'READY-resp', 'ACK-req', 'CONFIRM-resp'];
  const kinds: FaultKind[] = ['drop', 'drop-all', 'duplicate', 'delay', 'reorder'];
  let total = 0;

  for (const nic of ['model', 'firmware'] as const) {
  for (const flow of ['auth', 'rekey'] as Flow[]) {
    for (const traffic of ['continuous', 'switch-only'] as Traffic[]) {
      const name = `${nic === 'firmware' ? 'firmware NIC, ' : ''}${flow === 'auth' ? 'IKE_AUTH' : 'CREATE_CHILD_SA'} commit, ${traffic} traffic`;
      it(`${name}: every message x every fault`, () => {
        let n = 0;
        for (const target of targets) {
          for (const kind of kinds) {
            runCase({ nic, flow, traffic, fault: { target, kind } }, `${flow}/${traffic}/${target}/${kind}`);
            n++;
          }
        }
        total += n;
        assert.equal(n, 20);
      });

      it(`${name}: crash of host, NIC or station after every step`, () => {
        const steps = runCase({ nic, flow, traffic }, `${flow}/${traffic}/baseline`);
        assert.ok(steps >= 8, `the fault-free phase has ${steps} steps`);
        let n = 1;
        for (const who of ['host', 'nic', 'station'] as Party[]) {
          for (let atStep = 0; atStep <= steps; atStep++) {
            for (const downMs of [1_000, 30_000]) {
              runCase({ nic, flow, traffic, crash: { who, atStep, downMs } }, `${flow}/${traffic}/${who}/${atStep}/${downMs}`);
              n++;
            }
          }
        }
        total += n;
      });
    }
  }
  }

  after(() => {
    console.log(`      commit fault cases run: ${total}`);
  });
});
