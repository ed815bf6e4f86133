/**
 * The NIC as ASF's alert-sending device (DSP0136 §3.1, DESIGN §8, docs/ALERTS.md): host and security events become
 * Platform Event Traps (wire/pet.ts) queued for the owning station, sent under the SA on UDP 664 and sent again,
 * with back-off, until the station's PET Acknowledge (wire/pet-ack.ts) names them. In the clear (a plain trap to
 * UDP 162) only where the EEPROM enables clear management and no secure path exists, ASF's way: three
 * transmissions within a minute, no acknowledgement.
 *
 * Pure: time is an argument, randomness injected; the NIC machine (nic-machine.ts) raises events, gives the path
 * (sealing is the secure channel's: an alert's IV is a free slot of a station packet the NIC accepted, wire/sync-iv.ts;
 * with none free the alert waits for the station's next packet) and asks for the deadline. The
 * queue lives in RAM only: a NIC that loses power forgets its unsent alerts (and reports the power loss when power
 * returns).
 */
import { encodeInnerUdp } from '../wire/esp.js';
import {
  ALERT_CODES, EVENT_SOURCE_ASF, LANGUAGE_ENGLISH, SNMP_TRAP_PORT, TRAP_SOURCE_NIC, alertSpecific, encodePet, encodeTrap,
  petTimestamp, type AlertEvent, type Pet,
} from '../wire/pet.js';
import { acknowledges, type PetAck } from '../wire/pet-ack.js';
import { RMCP_PORT } from '../wire/rmcp.js';
import type { Endpoint } from './nic-firmware.js';

/** Alerts kept at once; a new one beyond this drops the oldest (counted). */
export const ALERT_QUEUE_SIZE = 32;
/** First retransmission after this long, doubling up to ALERT_RETRANSMIT_MAX_MS (ms). */
export const ALERT_RETRANSMIT_MS = 250;
export const ALERT_RETRANSMIT_MAX_MS = 8000;
/** Clear traps (no acknowledgement): ASF's three transmissions within a minute (catalogue §4.1). */
export const CLEAR_TRANSMISSIONS = 3;
export const CLEAR_SPACING_MS = 20_000;
/** Security events: replays and ICV failures counted per interval; an alert once they reach the threshold. */
export const SECURITY_INTERVAL_MS = 10_000;
export const SECURITY_THRESHOLD = 16;
/** IANA enterprise of the system maker in the PET: ASF's 4542 stands in for the emulated one (catalogue §2.4). */
const MANUFACTURER_ID = 4542;
const SYSTEM_ID = 1;
/** OEM custom field: binary FRU field (type 00b), 8 bytes: the alert's id, random, the station's dedup key. */
const ALERT_ID_FIELD = 0x08;

export type AlertPath =
  | { kind: 'secure'; epoch: number; generation: number; to: Endpoint; seal: (inner: Uint8Array) => { bytes: Uint8Array; generation: number } | null }
  | { kind: 'clear'; to: Endpoint }
  | null;

interface Entry {
  event: AlertEvent;
  id: string;
  pet: Pet;
  trap: Uint8Array;
  raisedAt: number;
  attempts: number;
  /** When it goes out next; null: waiting for a path (no live epoch, link down) or for a free IV slot. */
  nextAt: number | null;
  /** The datagram of its last secure transmission: sent again as it is while its epoch, SA and peer stay. */
  sealed: { epoch: number; generation: number; to: Endpoint; bytes: Uint8Array } | null;
  clearSent: number;
}

export interface AlertCounters {
  raised: number;
  sent: number;
  retransmitted: number;
  acked: number;
  /** Dropped from a full queue (the oldest goes). */
  dropped: number;
  clearSent: number;
  /** PET Acknowledges that matched no queued alert (late duplicates). */
  unmatchedAcks: number;
  /** Times an alert due to be sealed found no free IV slot and waited for the station's next packet. */
  slotWaits: number;
}

export interface AlertSenderOptions {
  nicId: string;
  /** The NIC's IPv4 address: the trap's agent-addr. */
  address: string;
  guid: Uint8Array;
  random: (n: number) => Uint8Array;
  /** When the NIC booted (the trap's TimeTicks count from here). */
  bootAt: number;
}

export class AlertSender {
  readonly counters: AlertCounters = { raised: 0, sent: 0, retransmitted: 0, acked: 0, dropped: 0, clearSent: 0, unmatchedAcks: 0, slotWaits: 0 };
  private readonly queue: Entry[] = [];
  private sequence = 0;
  private security = { since: -Infinity, replay: 0, icv: 0, raised: false };

  constructor(private readonly o: AlertSenderOptions) {}

  get pending(): number {
    return this.queue.length;
  }

  /** Some alert waits for a path or an IV slot (the machine then tries after every accepted station packet). */
  get waiting(): boolean {
    return this.queue.some((e) => e.nextAt === null);
  }

  /** Queue an alert for `event` at `now` (ms since the Unix epoch in the emulator). */
  raise(event: AlertEvent, now: number, ed?: [number, number, number]): void {
    const code = ALERT_CODES[event];
    const id = this.o.random(8);
    this.sequence = (this.sequence + 1) & 0xffff || 1;
    const eventData = new Uint8Array(8);
    eventData.set(ed ?? code.ed, 0);
    const pet: Pet = {
      guid: this.o.guid, sequence: this.sequence, timestamp: petTimestamp(now), utcOffset: 0,
      trapSource: TRAP_SOURCE_NIC, eventSource: EVENT_SOURCE_ASF, severity: code.severity, sensorDevice: 0xff, sensorNumber: 0xff,
      entity: code.entity, entityInstance: 0, eventData, language: LANGUAGE_ENGLISH, manufacturerId: MANUFACTURER_ID, systemId: SYSTEM_ID,
      oemFields: [Uint8Array.of(ALERT_ID_FIELD, ...id)],
    };
    const trap = encodeTrap({ community: 'public', agentAddr: this.o.address, specific: alertSpecific(event), timeTicks: Math.max(0, Math.floor((now - this.o.bootAt) / 10)), pet: encodePet(pet) });
    this.counters.raised++;
    if (this.queue.length >= ALERT_QUEUE_SIZE) {
      this.queue.shift();
      this.counters.dropped++;
    }
    this.queue.push({ event, id: Buffer.from(id).toString('hex'), pet, trap, raisedAt: now, attempts: 0, nextAt: now, sealed: null, clearSent: 0 });
  }

  /** A replay or an ICV failure on the secure port; an alert when they reach the threshold in an interval. */
  noteBadPacket(reason: 'replay' | 'icv', now: number): void {
    const s = this.security;
    if (now - s.since >= SECURITY_INTERVAL_MS) this.security = { since: now, replay: 0, icv: 0, raised: false };
    const t = this.security;
    t[reason]++;
    if (!t.raised && t.replay + t.icv >= SECURITY_THRESHOLD) {
      t.raised = true; // one per interval: a flood moves counters, not the queue
      this.raise('security', now, [ALERT_CODES.security.ed[0], Math.min(t.replay, 255), Math.min(t.icv, 255)]);
    }
  }

  /** The station acknowledged: the alert it names leaves the queue. */
  ack(a: PetAck): boolean {
    const i = this.queue.findIndex((e) => acknowledges(a, e.pet));
    if (i < 0) {
      this.counters.unmatchedAcks++;
      return false;
    }
    this.queue.splice(i, 1);
    this.counters.acked++;
    return true;
  }

  /** A path appeared (a live epoch, the link back): alerts waiting for one go out now. */
  wake(now: number): void {
    for (const e of this.queue) if (e.nextAt === null) e.nextAt = now;
  }

  pollTimeout(): number | null {
    let t: number | null = null;
    for (const e of this.queue) if (e.nextAt !== null && (t === null || e.nextAt < t)) t = e.nextAt;
    return t;
  }

  /** Send what is due at `now` on `path`; returns the datagrams (secure: to the secure port; clear: to 162). */
  due(now: number, path: AlertPath): { port: 'secure' | 'clear'; to: Endpoint; bytes: Uint8Array }[] {
    const out: { port: 'secure' | 'clear'; to: Endpoint; bytes: Uint8Array }[] = [];
    for (const e of [...this.queue]) {
      if (e.nextAt === null || e.nextAt > now) continue;
      if (!path) {
        e.nextAt = null;
        continue;
      }
      if (path.kind === 'secure') {
        const s = e.sealed;
        let bytes: Uint8Array;
        if (s && s.epoch === path.epoch && s.generation === path.generation && s.to.address === path.to.address && s.to.port === path.to.port) {
          bytes = s.bytes;
          this.counters.retransmitted++;
        } else {
          const sealed = path.seal(encodeInnerUdp(RMCP_PORT, SNMP_TRAP_PORT, e.trap));
          if (!sealed) {
            // No free IV slot in this epoch: wait for the station's next packet (its acknowledgement, its poll).
            e.nextAt = null;
            this.counters.slotWaits++;
            continue;
          }
          e.sealed = { epoch: path.epoch, generation: sealed.generation, to: path.to, bytes: sealed.bytes };
          bytes = sealed.bytes;
          if (e.attempts > 0) this.counters.retransmitted++;
        }
        if (e.attempts === 0) this.counters.sent++;
        e.attempts++;
        e.nextAt = now + Math.min(ALERT_RETRANSMIT_MS * 2 ** Math.min(e.attempts - 1, 16), ALERT_RETRANSMIT_MAX_MS);
        out.push({ port: 'secure', to: path.to, bytes });
      } else {
        e.clearSent++;
        this.counters.clearSent++;
        out.push({ port: 'clear', to: path.to, bytes: e.trap });
        if (e.clearSent >= CLEAR_TRANSMISSIONS) this.queue.splice(this.queue.indexOf(e), 1);
        else e.nextAt = now + CLEAR_SPACING_MS;
      }
    }
    return out;
  }

  status(): Record<string, unknown> {
    return { queued: this.queue.length, queue: this.queue.map((e) => ({ event: e.event, id: e.id, sequence: e.pet.sequence, attempts: e.attempts })), counters: { ...this.counters } };
  }
}
