/**
 * Pair: a station (IkeInitiator) and a host agent (IkeResponder) wired over an in-memory link
 * in virtual time (quinn-proto / strongSwan exchange tests). Messages wait in two queues until
 * the test delivers them one at a time; `describe` renders each in RFC notation so tests can
 * read like the flow diagrams of RFC 7296:  p.toHost() === 'IKE_SA_INIT request #0 { SA, KEi, Ni }'.
 */
import type { SaPair } from '../../../wire/sa.js';
import { describeMessage } from '../../../protocol/ike/describe.js';
import type { IkeEffect } from '../../../protocol/ike/effects.js';
import { IkeInitiator, type InitiatorOptions } from '../../../protocol/ike/ike-initiator.js';
import { IkeResponder, type ResponderOptions } from '../../../protocol/ike/ike-responder.js';
import { NicDouble } from './nic-double.js';
import { seededRandom } from './prng.js';

export const PSK = new TextEncoder().encode('lab-psk-0123456789abcdef');

export interface PairOptions {
  seed?: string;
  initiator?: Partial<InitiatorOptions>;
  responder?: Partial<ResponderOptions>;
}

export class Pair {
  now = 0;
  readonly station: IkeInitiator;
  readonly host: IkeResponder;
  readonly nic = new NicDouble();
  readonly toHostQ: Uint8Array[] = [];
  readonly toStationQ: Uint8Array[] = [];
  /** Every datagram in order, for pcaps: [direction, bytes]. */
  readonly wire: ['station->host' | 'host->station', Uint8Array][] = [];
  /** Non-send effects in order, per side. */
  stationFx: IkeEffect[] = [];
  hostFx: IkeEffect[] = [];
  /** The station's outbound SA (after switch-outbound). */
  stationSa: SaPair | null = null;
  /** Every IKE SA's SK_e seen on either side, by SPIi|SPIr, so `describe` opens old and new IKE SAs alike. */
  private readonly keyring = new Map<string, { skEi: Uint8Array; skEr: Uint8Array }>();
  /** The station's address as the host agent is told (RFC 7296 §2.6 cookie, per-source limit). */
  stationAddress = '127.0.0.2';

  constructor(o: PairOptions = {}) {
    const seed = o.seed ?? 'pair';
    this.station = new IkeInitiator({ random: seededRandom(seed + '/station'), psk: PSK, id: 'station.lab', peerId: 'nic-1.lab', ...o.initiator });
    this.host = new IkeResponder({ random: seededRandom(seed + '/host'), psk: PSK, id: 'nic-1.lab', nextGeneration: 1, ...o.responder });
  }

  private stationDo(fx: IkeEffect[]): IkeEffect[] {
    for (const e of fx) {
      if (e.kind === 'send') {
        this.toHostQ.push(e.bytes);
        this.wire.push(['station->host', e.bytes]);
      } else {
        this.stationFx.push(e);
        if (e.kind === 'switch-outbound') {
          this.stationSa = e.sa;
          this.nic.authenticate(e.sa); // §2.8 dummy packet on the new SA
        }
      }
    }
    return fx;
  }

  private hostDo(fx: IkeEffect[]): IkeEffect[] {
    for (const e of fx) {
      if (e.kind === 'send') {
        this.toStationQ.push(e.bytes);
        this.wire.push(['host->station', e.bytes]);
      } else {
        this.hostFx.push(e);
        if (e.kind === 'nic-write-pending') this.nic.writePending(e.sa);
        if (e.kind === 'nic-commit') this.nic.commit(e.generation);
        if (e.kind === 'nic-discard') this.nic.discard(e.generation);
      }
    }
    return fx;
  }

  /** The station's outbound SA (a method, so tests can read it again after narrowing). */
  outbound(): SaPair | null {
    return this.stationSa;
  }

  private learnKeys(): void {
    const add = (k: { spiI: Uint8Array; spiR: Uint8Array; skEi: Uint8Array; skEr: Uint8Array } | null): void => {
      if (k) this.keyring.set(Buffer.from(k.spiI).toString('hex') + Buffer.from(k.spiR).toString('hex'), { skEi: k.skEi, skEr: k.skEr });
    };
    add(this.station.ikeKeys());
    for (const spi of this.host.establishedSpis) add(this.host.ikeSa(spi));
  }

  describe(bytes: Uint8Array): string {
    this.learnKeys();
    const k = bytes.length >= 16 ? this.keyring.get(Buffer.from(bytes.subarray(0, 16)).toString('hex')) : undefined;
    const fallback = this.station.ikeKeys();
    return describeMessage(bytes, k ?? (fallback ? { skEi: fallback.skEi, skEr: fallback.skEr } : undefined));
  }

  connect(): void {
    this.stationDo(this.station.connect(this.now));
  }

  refresh(): void {
    this.stationDo(this.station.refresh(this.now));
  }

  ping(): void {
    this.stationDo(this.station.ping(this.now));
  }

  close(): void {
    this.stationDo(this.station.close(this.now));
  }

  rekeyIkeSa(): void {
    this.stationDo(this.station.rekeyIkeSa(this.now));
  }

  /** The host side starts a rekey (as a standard peer's lifetime policy would). */
  hostRekeyIkeSa(): void {
    this.hostDo(this.host.rekeyIkeSa(this.now));
  }

  hostRekeyChild(): void {
    this.hostDo(this.host.rekeyChild(this.now));
  }

  abandon(): void {
    this.stationDo(this.station.abandon(this.now));
  }

  /** Delivers the oldest station->host datagram; returns its description. */
  toHost(): string {
    const b = this.toHostQ.shift();
    if (!b) throw new Error('no datagram queued for the host');
    const d = this.describe(b);
    this.hostDo(this.host.receive(b, this.now, { address: this.stationAddress }));
    this.learnKeys();
    return d;
  }

  toStation(): string {
    const b = this.toStationQ.shift();
    if (!b) throw new Error('no datagram queued for the station');
    const d = this.describe(b);
    this.stationDo(this.station.receive(b, this.now));
    this.learnKeys();
    return d;
  }

  /** Hand-made input, e.g. a replayed or crafted datagram. */
  injectToHost(b: Uint8Array, from?: string): IkeEffect[] {
    return this.hostDo(this.host.receive(b, this.now, from === undefined ? undefined : { address: from }));
  }

  injectToStation(b: Uint8Array): IkeEffect[] {
    return this.stationDo(this.station.receive(b, this.now));
  }

  /** Deliver everything queued, alternating, until both queues are empty. */
  settle(maxSteps = 100): string[] {
    const log: string[] = [];
    for (let i = 0; i < maxSteps && (this.toHostQ.length || this.toStationQ.length); i++) {
      if (this.toHostQ.length) log.push('--> ' + this.toHost());
      if (this.toStationQ.length) log.push('<-- ' + this.toStation());
    }
    return log;
  }

  /** Advance virtual time to `t` firing every deadline on the way (messages stay queued). */
  advanceTo(t: number): void {
    for (;;) {
      const ds = [this.station.pollTimeout(), this.host.pollTimeout()].filter((x): x is number => x !== null && x <= t);
      if (ds.length === 0) break;
      this.now = Math.max(this.now, Math.min(...ds));
      this.stationDo(this.station.handleTimeout(this.now));
      this.hostDo(this.host.handleTimeout(this.now));
    }
    this.now = Math.max(this.now, t);
  }

  kinds(fx: IkeEffect[]): string[] {
    return fx.filter((e) => e.kind !== 'log').map((e) => e.kind);
  }

  /** Runs connect + commit with no faults. */
  establish(): void {
    this.connect();
    this.settle();
  }
}
