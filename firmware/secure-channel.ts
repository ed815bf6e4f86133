/**
 * The NIC's side of the secure channel on UDP/664: finds the SA a datagram belongs to, opens it in RFC 4303
 * §3.4 order, records it in the SA database (make-before-break bookkeeping and the inbound sequence
 * checkpoint, DESIGN §2.5-2.6) before the firmware acts on it, and seals answers under the SA the request
 * came in on, with outbound sequence numbers handed out (and checkpointed) by the SA database.
 *
 * Sync epochs (wire/sync-frame.ts, wire/sync-iv.ts): a packet is accepted only under a live epoch, each with its
 * own replay windows (one station process owns an epoch and counts its own numbers in it). Up to MAX_LIVE_EPOCHS
 * are live at once, so a station's daemon and a CLI verb of the same station can both talk to the NIC; a new one
 * retires the least recently used, and a takeover's sync retires all others (nic-sync.ts). None is live after a
 * boot: an authentic packet then only invites a sync.
 */
import { ProtocolError, UsageError } from '../common/errors.js';
import { SaEndpoint, candidateSpis, espPacketOf, type InboundWindows } from '../wire/sa-endpoint.js';
import { K_ALERT_SLOTS, nicAlertIv, nicAnswerIv, stationIv, stationIvParts } from '../wire/sync-iv.js';
import type { AeadImpl } from '../wire/aead.js';
import { mutated } from '../common/mutation.js';
import type { SaDatabase } from './sa-database.js';
import type { SaPair } from '../wire/sa.js';

export interface Endpoint { address: string; port: number }
export interface OpenedPacket {
  sa: SaPair;
  payload: Uint8Array;
  seq: bigint;
  /** The station packet's IV: its sync epoch and low 32 bits (wire/sync-iv.ts); answers derive their IVs from it. */
  iv: { epoch: number; low: number };
  /** Authentic, but this NIC has not been synced since it booted: not to be acted on (nic-sync.ts). */
  unsynced: boolean;
}

/** Sync epochs accepted at once (nic-sync.ts). */
export const MAX_LIVE_EPOCHS = 4;
/**
 * Free alert IV slots kept per live epoch (wire/sync-iv.ts: two per accepted station packet); beyond it the oldest
 * go unused. Enough for a burst of alerts between two station packets (a power loss and its restore, a cable pull
 * and plug, host events); each acknowledgement the station sends brings two more.
 */
export const ALERT_SLOTS_KEPT = 16;

interface LiveEpoch {
  /** When a packet of this epoch was last accepted (least recently used goes first). */
  lastUsed: number;
  /** Replay windows per SA generation. */
  windows: Map<number, InboundWindows>;
  /** The SA that synced it and the floor given: the windows of an SA start there or at the SA's own floor. */
  generation: number;
  floor: bigint;
  /** Where this epoch's station packets last came from: where its alerts go (null: none accepted yet). */
  peer: Endpoint | null;
  /**
   * Free alert IV slots (wire/sync-iv.ts): station packets accepted in this epoch under SA `slotGeneration`, each
   * as low * 4 + k for k = 2 and 3, oldest first. An alert takes one and it is gone; RAM only, as the epoch is.
   */
  slots: number[];
  slotGeneration: number;
}

export class SecureChannel {
  /** Live crypto state per SA generation, created on first use (idle NICs hold none). */
  private readonly endpoints = new Map<number, SaEndpoint>();
  private readonly live = new Map<number, LiveEpoch>();
  /** When a packet was last opened or sealed here (releaseIdle). */
  private activeAt = -Infinity;

  constructor(
    private readonly db: SaDatabase,
    /** This NIC's own address and secure port (the AH pseudo-header's NIC side). */
    private readonly local: Endpoint,
    private readonly impl?: AeadImpl,
  ) {}

  /**
   * Verify and decrypt one datagram from the station. Throws ProtocolError (E_SPI, E_REPLAY, E_EPOCH, E_ICV, ...).
   * A packet whose IV names an epoch that is not live is refused before any cryptography. With no live epoch (not
   * synced since boot) an authentic packet is opened and returned as `unsynced`, and nothing is recorded.
   */
  open(datagram: Uint8Array, from: Endpoint, now: number): OpenedPacket {
    if (datagram.length < 8) throw new ProtocolError('E_SHORT', `secure datagram of ${datagram.length} bytes; dropped`);
    const { ahSpi, espSpi } = candidateSpis(datagram);
    let sa = ahSpi !== null ? this.db.lookupInbound(ahSpi) : null;
    if (sa && (sa.policy !== 'esp+ah' || sa.toNic.ahSpi !== ahSpi)) sa = null;
    if (!sa) {
      sa = this.db.lookupInbound(espSpi);
      // An esp+ah SA accepts only AH-wrapped datagrams: ESP alone would skip the policy's AH check.
      if (sa && (sa.policy !== 'esp' || sa.toNic.spi !== espSpi)) sa = null;
    }
    if (!sa) throw new ProtocolError('E_SPI', `no SA with SPI 0x${espSpi.toString(16).padStart(8, '0')}${ahSpi !== null ? ` or AH SPI 0x${ahSpi.toString(16).padStart(8, '0')}` : ''}; dropped`);
    const ep = this.endpoint(sa);
    const ends = { srcAddr: from.address, srcPort: from.port, dstAddr: this.local.address, dstPort: this.local.port };
    const esp = espPacketOf(datagram, sa.policy === 'esp+ah');
    const iv = esp ? stationIvParts(esp) : null;
    if (!iv) throw new ProtocolError('E_SHORT', `secure datagram of ${datagram.length} bytes has no ESP IV; dropped`);
    if (this.live.size === 0) {
      // Not synced since boot: authentic or not, nothing is acted on; the caller may invite a sync.
      const r = ep.open(datagram, ends);
      return { sa, payload: r.payload, seq: r.seq, iv, unsynced: true };
    }
    const e = this.live.get(iv.epoch);
    if (!e) {
      throw new ProtocolError('E_EPOCH', `ESP packet of sync epoch ${iv.epoch}, which is not live here (sent before a resynchronisation that ended it, or replayed); dropped`);
    }
    let windows = e.windows.get(sa.generation);
    if (!windows) {
      // An SA this epoch has not seen yet (committed since the sync): its own restart floor, or the sync's.
      const own = this.db.inboundFloor(sa.generation);
      windows = ep.newWindows(sa.generation === e.generation && e.floor > own ? e.floor : own);
      e.windows.set(sa.generation, windows);
    }
    const r = ep.open(datagram, ends, undefined, windows);
    e.lastUsed = now;
    this.activeAt = now;
    if (e.peer === null || e.peer.address !== from.address || e.peer.port !== from.port) e.peer = { address: from.address, port: from.port };
    this.lastUsed = ep;
    this.lastIv = iv;
    // Persist what must survive a restart before the packet is acted on (DESIGN §2.6).
    this.db.onAuthenticated(sa.generation, r.seq);
    // Accepted (once: the window now refuses this IV): its two alert slots are free (wire/sync-iv.ts). Slots are
    // kept for the newest SA the epoch's packets came under (a late packet of an older one adds none).
    if (sa.generation > e.slotGeneration) {
      e.slots.length = 0;
      e.slotGeneration = sa.generation;
    }
    if (sa.generation === e.slotGeneration) {
      const base = iv.low * 4;
      e.slots.push(base + K_ALERT_SLOTS[0], base + K_ALERT_SLOTS[1]);
      if (e.slots.length > ALERT_SLOTS_KEPT) e.slots.splice(0, e.slots.length - ALERT_SLOTS_KEPT);
    }
    return { sa, payload: r.payload, seq: r.seq, iv, unsynced: false };
  }

  /**
   * A new sync epoch (nic-sync.ts): live from now on, SA `generation`'s window above `floor`. `exclusive` (a
   * station that took the NIC over): every other epoch ends. Otherwise the least recently used ends when more than
   * MAX_LIVE_EPOCHS would be live. Returns the epochs it ended.
   */
  addEpoch(epoch: number, generation: number, floor: bigint, now: number, exclusive: boolean): number[] {
    const ended: number[] = [];
    if (exclusive) {
      for (const k of this.live.keys()) ended.push(k);
      this.live.clear();
    }
    const sa = this.db.byGeneration(generation);
    const windows = new Map<number, InboundWindows>();
    if (sa) windows.set(generation, this.endpoint(sa).newWindows(floor));
    this.live.set(epoch, { lastUsed: now, windows, generation, floor, peer: null, slots: [], slotGeneration: generation });
    while (this.live.size > MAX_LIVE_EPOCHS) {
      let oldest = -1;
      let at = Infinity;
      for (const [k, v] of this.live) if (k !== epoch && v.lastUsed < at) [oldest, at] = [k, v.lastUsed];
      this.live.delete(oldest);
      ended.push(oldest);
    }
    return ended;
  }

  /** End one epoch now (a station asked about its commands: their fate must not change afterwards). */
  endEpoch(epoch: number): boolean {
    return this.live.delete(epoch);
  }

  isLive(epoch: number): boolean {
    return this.live.has(epoch);
  }

  get liveEpochs(): number[] {
    return [...this.live.keys()];
  }

  /** The held SA whose station->NIC SPI (or AH SPI) is `spi`, or null (a sync frame names its SA by it). */
  lookup(spi: number): SaPair | null {
    return this.db.lookupInbound(spi);
  }

  /**
   * Idle time: prepare the next packets' keystreams of the SA last used (SaEndpoint.prepareNext). The NIC's
   * shell calls it after it has sent an answer, so the next request and answer need less work on arrival.
   */
  prepareNext(): void {
    const ep = this.lastUsed;
    const iv = this.lastIv;
    if (!ep || !iv || !this.db.byGeneration(ep.sa.generation)) return;
    // The station's next packet continues its counter in this epoch; our answer to it is a response (k = 1).
    const next = (iv.low + 1) >>> 0;
    ep.prepareNext(nicAnswerIv(iv.epoch, next, 1), stationIv(iv.epoch, BigInt(next)));
  }

  private lastUsed: SaEndpoint | null = null;
  private lastIv: { epoch: number; low: number } | null = null;

  /** Seal an answer under SA `generation` (the one its request came in on), with IV `iv` (wire/sync-iv.ts). */
  seal(generation: number, inner: Uint8Array, to: Endpoint, iv: bigint | undefined): Uint8Array {
    const sa = this.db.byGeneration(generation);
    if (!sa) throw new UsageError('E_NO_SA', `SA generation ${generation} is no longer held`);
    const ep = this.endpoint(sa);
    const { seq } = this.db.nextOutbound(generation);
    if (seq !== ep.nextOutSeq) ep.skipOutboundTo(seq);
    return ep.seal(inner, { srcAddr: this.local.address, srcPort: this.local.port, dstAddr: to.address, dstPort: to.port }, iv);
  }

  /**
   * Where an alert goes (docs/ALERTS.md): the live epoch whose station packets arrived last, to where they came
   * from — the station process that talks to this NIC (its owner's daemon; after a takeover the new owner's sync
   * ended every other epoch) — under the SA those packets came in on. Null when no epoch is live with a packet
   * accepted, or that SA is no longer held.
   */
  alertTarget(): { epoch: number; to: Endpoint; generation: number } | null {
    let best: { epoch: number; to: Endpoint; generation: number } | null = null;
    let at = -Infinity;
    for (const [k, v] of this.live) if (v.peer && v.lastUsed >= at) [best, at] = [{ epoch: k, to: v.peer, generation: v.slotGeneration }, v.lastUsed];
    return best && this.db.byGeneration(best.generation) ? best : null;
  }

  /**
   * Seal an alert (its inner UDP datagram) in live epoch `epoch` under the SA of its free slots, with the IV of the
   * oldest free slot, which is then used (wire/sync-iv.ts nicAlertIv): never an IV an answer or another alert used.
   * Null when the epoch has no free slot: the alert waits for the station's next packet.
   */
  sealAlert(epoch: number, inner: Uint8Array, to: Endpoint): { bytes: Uint8Array; generation: number } | null {
    const e = this.live.get(epoch);
    if (!e || e.slots.length === 0) return null;
    const sa = this.db.byGeneration(e.slotGeneration);
    if (!sa) {
      e.slots.length = 0;
      return null;
    }
    // Taken before sealing: a slot whose seal then fails is lost, never used twice.
    const slot = mutated('alert-iv-reuse') ? e.slots[0] : e.slots.shift()!;
    return { bytes: this.seal(sa.generation, inner, to, nicAlertIv(epoch, Math.floor(slot / 4), slot % 4)), generation: sa.generation };
  }

  /** Free alert slots of live epoch `epoch` (status and tests). */
  alertSlots(epoch: number): number {
    return this.live.get(epoch)?.slots.length ?? 0;
  }

  private endpoint(sa: SaPair): SaEndpoint {
    let ep = this.endpoints.get(sa.generation);
    if (!ep) {
      ep = new SaEndpoint(sa, 'nic', { outStart: this.db.outboundStart(sa.generation), inFloor: this.db.inboundFloor(sa.generation), impl: this.impl });
      if (this.endpoints.size >= 2) {
        for (const g of [...this.endpoints.keys()]) if (!this.db.byGeneration(g)) this.endpoints.delete(g);
      }
      this.endpoints.set(sa.generation, ep);
    }
    return ep;
  }

  /**
   * Drop the per-key crypto state (the SA endpoints: AES key schedules, GHASH tables, prepared keystreams) when
   * nothing was opened here for `idleMs`; the next packet builds it again. The keys stay in the SA database, the
   * sequence counters in its checkpoints (seal() resumes from them) and the replay windows with their epochs, so
   * nothing a station relies on changes: only memory (issue 16: an idle NIC costs its keys, not its tables).
   */
  releaseIdle(now: number, idleMs: number): boolean {
    if (this.endpoints.size === 0 || now - this.activeAt < idleMs) return false;
    this.endpoints.clear();
    this.lastUsed = null;
    this.lastIv = null;
    return true;
  }

  /** Forget live crypto state and every epoch (the NIC lost power). */
  reset(): void {
    this.endpoints.clear();
    this.live.clear();
    this.lastUsed = null;
    this.lastIv = null;
  }
}
