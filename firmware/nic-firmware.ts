/**
 * The management NIC's firmware: everything the NIC does with a datagram, as a pure function of
 * (its EEPROM-backed state, the datagram, the host's state). No sockets, no clocks: the emulator
 * hands datagrams in and performs the returned effects (STYLE.md "pure core, thin shells").
 *
 * Clear path, UDP 623 (DSP0136 §3.2): Presence Ping is always answered; Capabilities and System State are
 * answered; Reset / Power-Up / Power-Down / Power Cycle are refused unless the EEPROM configuration enables
 * clear management, and then only the configured subset (the seed's cold-boot option). Every clear command is
 * logged.
 *
 * RMCP ACKs: an ACK precedes the answer whenever the request's RMCP header decodes (version
 * 06h, class ASF, IPMI or OEM), it is not itself an ACK and its sequence is not 0xFF — DSP0136 §3.2.2.1 (catalogue
 * §2.2), which puts no condition on the class or the contents. That includes messages the NIC does not serve (an
 * unknown ASF type, an IPMI-class message while lanplus is off, a malformed body): "the client will acknowledge receipt of any
 * unsupported message, but will disregard the message contents" (DSP0136 p.19, p.33; catalogue §3.2). They are
 * ACKed, then dropped and counted by reason. On UDP 664 the same holds for the inner RMCP message once the ESP
 * packet authenticated (a packet failing its integrity check is never acknowledged, §3.2.2.1 p.20); the ACK goes
 * out under the same SA.
 *
 * Secure path, UDP 664 (DESIGN §2.2): the payload is an RFC 4303 ESP packet (optionally inside RFC 4302 AH).
 * Receive order (RFC 4303 §3.4.3): SPI lookup -> replay-window check -> ICV verify + decrypt -> window update.
 * The decrypted inner packet is UDP (dst 623) + RMCP/ASF, handled like the clear path except that every
 * command is honoured, in every host state (the NIC runs on auxiliary power). Responses go out under the SA
 * the request came in on, with IVs derived from the request's (wire/sync-iv.ts). Only packets of the current sync
 * epoch are accepted (nic-sync.ts); a NIC not synced since boot acts on none. A secure command is recorded in the
 * EEPROM before it runs (exec-record.ts: the shell's `host-command` effect), so a retransmission (same epoch, RMCP
 * sequence, ASF tag and type) is acknowledged and never executed twice, also after a power loss (DESIGN §5, §7).
 *
 * IPMI 2.0 RMCP+ (class 7) on the clear port, when the EEPROM enables lanplus: handed on whole as an `ipmi` effect to
 * the machine's responder (firmware/ipmi/, DESIGN §9), after the RMCP ACK if one is due; the IPMI tools send
 * sequence FFh and get none. The Presence Pong then says IPMI is supported.
 *
 * Bad input never throws out of `receive*`: it is dropped and counted by reason in `counters.dropped`.
 */
import { decodeRmcpHeader, rmcpAckFor, RMCP_SEQ_NO_ACK, RMCP_CLASS_ASF, RMCP_CLASS_IPMI, RMCP_CLASS_OEM, RMCP_PORT, type RmcpHeader } from '../wire/rmcp.js';
import { decodeOwnerNotice, type OwnerNotice } from '../wire/owner-notice.js';
import { ASF_TYPE_CODE, decodeAsf, encodeRmcpAsf, presencePong, type AsfMessage } from '../wire/asf.js';
import { ProtocolError, LifelineError, type ErrorCode } from '../common/errors.js';
import { TornWriteError } from './eeprom-device.js';
import { CLEAR_COMMAND_BITS } from './eeprom-image.js';
import { decodeInnerUdp, encodeInnerUdp, espSpi } from '../wire/esp.js';
import { isSyncFrame, syncFrameSpi } from '../wire/sync-frame.js';
import type { HostState } from './host-state.js';
import { systemStateCode, type AsfCommandEvent } from './host-state.js';
import { HEARTBEAT_SPI } from '../wire/sa.js';
import type { SecureChannel, OpenedPacket } from './secure-channel.js';
import { nicAnswerIv } from '../wire/sync-iv.js';
import { mutated } from '../common/mutation.js';
import type { CommandIdentity, CommandQuery } from '../wire/sync-frame.js';
import type { SaPair } from '../wire/sa.js';
import { decodePetAck, type PetAck } from '../wire/pet-ack.js';

export interface Endpoint { address: string; port: number }

export type FirmwareEffect =
  | { kind: 'send'; port: 'clear' | 'secure'; to: Endpoint; bytes: Uint8Array }
  /**
   * Run `command` on the host. Secure commands carry their identity: the machine records it in the EEPROM
   * (exec-record.ts) before it acts, and drops the whole batch (the ACK included) if that write fails.
   */
  | { kind: 'host-command'; command: AsfCommandEvent; via: 'clear' | 'secure'; from: Endpoint; rmcpSeq: number; tag: number; generation: number; identity: CommandQuery | null }
  | { kind: 'log'; level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> }
  | { kind: 'heartbeat'; from: Endpoint; bytes: Uint8Array }
  /** A sync frame (wire/sync-frame.ts), with the SA its SPI names (null: none held). */
  | { kind: 'sync'; from: Endpoint; bytes: Uint8Array; sa: SaPair | null }
  /**
   * An RMCP class-7 (IPMI) datagram on the clear port while lanplus is enabled: for the machine's IPMI responder
   * (firmware/ipmi/ipmi-lan.ts), the whole datagram from the RMCP header on. Any RMCP ACK went out before it.
   */
  | { kind: 'ipmi'; from: Endpoint; bytes: Uint8Array }
  /** An authentic ESP packet while not synced since boot: invite the station to sync (nic-sync.ts hint). */
  | { kind: 'unsynced'; from: Endpoint; sa: SaPair }
  /** A station packet authenticated and was accepted (liveness for the heartbeat monitor). */
  | { kind: 'station-packet' }
  /** A station that took this NIC over said so (authenticated, wire/owner-notice.ts). */
  | { kind: 'owner'; notice: OwnerNotice; from: Endpoint }
  /** The station acknowledged an alert (PET Acknowledge under the SA, wire/pet-ack.ts; docs/ALERTS.md). */
  | { kind: 'alert-ack'; ack: PetAck };

/** What the firmware needs to know of the executed-command record and of the sync's cancellations. */
export interface FirmwareState {
  /** The epoch a command arriving under `id.epoch` was first sent under (nic-sync.ts). */
  firstEpoch(id: CommandIdentity): number;
  /** Has the command with this identity (first epoch, RMCP sequence, ASF tag, type) already run (exec-record.ts)? */
  executed(id: CommandQuery): boolean;
  /** Was this transmission cancelled by a sync that reported its command not executed (nic-sync.ts)? It must never run. */
  cancelled(id: CommandIdentity): boolean;
}

/** Bit per ASF command in the EEPROM's allowed-clear-commands mask (eeprom-image.ts). */
export const CLEAR_COMMAND_BIT: Record<AsfCommandEvent, number> = CLEAR_COMMAND_BITS;

export interface ClearPolicy { clearManagement: boolean; allowedClearCommands: number }

export interface NicCounters {
  accepted: { clear: number; secure: number };
  /** dropped[reason] — reasons are error codes without the E_ prefix, lower-case (replay, icv, spi, ...). */
  dropped: Record<string, number>;
  refusedClear: number;
  executed: number;
  duplicatesAnswered: number;
  acksSent: number;
  /**
   * RMCP ACKs received (a station's ACK of a NIC's answer: nothing to do, DSP0136 §3.2.2.1), by port; counted so that
   * every datagram is accepted, dropped or one of these.
   */
  acksReceived: { clear: number; secure: number };
}

/**
 * Answers kept for retransmitted commands. A command's identity is its RMCP sequence + ASF tag (+ type), which
 * the stations derive from the NIC's shared command log (65,280 distinct values), so the cache only has to
 * outlive a station's retransmissions and a takeover's completion of unacknowledged commands: stations keep
 * at most 16 commands in flight per NIC (mgmt-station/core/session.ts), far below this size.
 */
export const RESPONSE_CACHE_SIZE = 256;
/** One shared effect object: it carries no data, and this path runs for every secure packet. */
const STATION_PACKET: FirmwareEffect = Object.freeze({ kind: 'station-packet' });

/** The answers' positions among the packets a NIC sends for one station packet (wire/sync-iv.ts k). */
const K_ACK = 0;
const K_RESPONSE = 1;

export class NicFirmware {
  readonly counters: NicCounters = {
    accepted: { clear: 0, secure: 0 },
    dropped: {},
    refusedClear: 0,
    executed: 0,
    duplicatesAnswered: 0,
    acksSent: 0,
    acksReceived: { clear: 0, secure: 0 },
  };
  /** Highest owner epoch announced to this NIC (RAM only: a NIC restart accepts the next notice). */
  ownerEpoch = 0;
  /** The emulated host's state, kept current by the shell. */
  hostState: HostState = 'off';
  /** Insertion-ordered: the oldest entry goes first when the cache is full. Allocated on first use. */
  private cache: Map<string, AsfMessage[]> | null = null;

  constructor(
    private readonly channel: SecureChannel,
    private readonly clearPolicy: () => ClearPolicy,
    private readonly state: FirmwareState,
    /** IPMI 2.0 over LAN (lanplus) is enabled by the EEPROM (DESIGN §9): class 7 goes to the responder. */
    private readonly lanplus: () => boolean = () => false,
  ) {}

  // ---------------------------------------------------------------- clear path (UDP 623)

  receiveClear(from: Endpoint, bytes: Uint8Array): FirmwareEffect[] {
    const effects: FirmwareEffect[] = [];
    let rmcp: RmcpHeader;
    try {
      rmcp = decodeRmcpHeader(bytes);
    } catch (e) {
      this.drop(e); // not RMCP 1.0 with a known class: nothing to acknowledge
      return effects;
    }
    if (rmcp.ack) {
      this.counters.acksReceived.clear++; // an ACK is never acknowledged nor answered (§3.2.2.1); nothing to do
      return effects;
    }
    // The RMCP ACK depends on the RMCP header alone: it goes out first, also for
    // messages whose contents are then disregarded.
    const ack = rmcpAckFor(rmcp);
    if (ack) {
      this.counters.acksSent++;
      effects.push({ kind: 'send', port: 'clear', to: from, bytes: ack });
    }
    // IPMI beside ASF on the same port (RMCP class 7; DESIGN §9). With lanplus off it is disregarded as before.
    if (rmcp.messageClass === RMCP_CLASS_IPMI && this.lanplus()) {
      effects.push({ kind: 'ipmi', from, bytes });
      return effects;
    }
    let asf: AsfMessage;
    try {
      if (rmcp.messageClass !== RMCP_CLASS_ASF) throw new ProtocolError('E_CLASS', `RMCP class ${rmcp.messageClass} is not ASF`);
      asf = decodeAsf(bytes, 4);
    } catch (e) {
      this.drop(e); // acknowledged (above) and disregarded: counted by reason (class, type, iana, length, ...)
      return effects;
    }
    this.counters.accepted.clear++;
    if (isCommand(asf)) {
      const policy = this.clearPolicy();
      const allowed = policy.clearManagement && (policy.allowedClearCommands & CLEAR_COMMAND_BIT[asf.type]) !== 0;
      effects.push({
        kind: 'log', level: allowed ? 'info' : 'warn',
        msg: allowed ? 'clear command honoured (clear management enabled)' : 'clear command refused',
        fields: { command: asf.type, from: `${from.address}:${from.port}`, hostState: this.hostState },
      });
      if (!allowed) {
        this.counters.refusedClear++;
        return effects;
      }
      this.counters.executed++;
      effects.push({ kind: 'host-command', command: asf.type, via: 'clear', from, rmcpSeq: rmcp.sequence, tag: asf.tag, generation: 0, identity: null });
      return effects;
    }
    const answer = this.answer(asf);
    if (answer) effects.push({ kind: 'send', port: 'clear', to: from, bytes: encodeRmcpAsf(RMCP_SEQ_NO_ACK, answer) });
    return effects;
  }

  // ---------------------------------------------------------------- secure path (UDP 664)

  receiveSecure(from: Endpoint, bytes: Uint8Array, now = 0): FirmwareEffect[] {
    let spi: number;
    try {
      spi = espSpi(bytes);
    } catch (e) {
      this.drop(e);
      return [];
    }
    if (spi === HEARTBEAT_SPI) {
      if (!isSyncFrame(bytes)) return [{ kind: 'heartbeat', from, bytes }];
      let named: number;
      try {
        named = syncFrameSpi(bytes);
      } catch (e) {
        this.drop(e);
        return [];
      }
      return [{ kind: 'sync', from, bytes, sa: this.channel.lookup(named) }];
    }
    let opened: OpenedPacket;
    try {
      opened = this.channel.open(bytes, from, now);
    } catch (e) {
      this.drop(e);
      return [];
    }
    if (opened.unsynced) {
      // Authentic, but nothing tells this NIC since its boot which of the station's packets are new: not acted on.
      this.count('unsynced');
      return [{ kind: 'unsynced', from, sa: opened.sa }];
    }
    const effects: FirmwareEffect[] = [STATION_PACKET];
    let rmcp: RmcpHeader;
    let body: Uint8Array;
    let srcPort: number;
    try {
      const udp = decodeInnerUdp(opened.payload);
      if (udp.dstPort !== RMCP_PORT) throw new ProtocolError('E_LENGTH', `inner UDP destination port ${udp.dstPort} is not 623`);
      srcPort = udp.srcPort;
      body = udp.body;
      rmcp = decodeRmcpHeader(body);
    } catch (e) {
      // Authenticated but malformed inside: the station is buggy, not an attacker; still drop and count.
      this.drop(e);
      return effects;
    }
    if (rmcp.ack) {
      this.counters.acksReceived.secure++; // a station's ACK of our response: nothing to do
      return effects;
    }
    const gen = opened.sa.generation;
    const iv = opened.iv;
    const send = (m: Uint8Array, k: number) =>
      effects.push({ kind: 'send', port: 'secure', to: from, bytes: this.channel.seal(gen, encodeInnerUdp(RMCP_PORT, srcPort, m), from, mutated('nic-counter-iv') ? undefined : nicAnswerIv(iv.epoch, iv.low, k)) });
    // A command whose identity a sync cancelled (reported to a station as not executed, which then sent it again
    // under its own epoch, or recorded that it did not run) is neither acknowledged nor run: it is a dead packet.
    let asf: AsfMessage | null = null;
    let asfError: unknown = null;
    if (rmcp.messageClass === RMCP_CLASS_ASF) {
      try {
        asf = decodeAsf(body, 4);
      } catch (e) {
        asfError = e;
      }
    }
    const identity: CommandIdentity | null = asf && isCommand(asf) && rmcp.sequence !== RMCP_SEQ_NO_ACK
      ? { epoch: iv.epoch, rmcpSeq: rmcp.sequence, tag: asf.tag, type: ASF_TYPE_CODE[asf.type] }
      : null;
    if (identity && this.state.cancelled(identity)) {
      this.count('cancelled');
      return effects;
    }
    // As on the clear path, the RMCP ACK depends on the RMCP header alone (§3.2.2.1): it goes out first, also for
    // a message the NIC then disregards, and for a retransmission answered from the record or the cache.
    const ack = rmcpAckFor(rmcp);
    if (ack) {
      this.counters.acksSent++;
      send(ack, K_ACK);
    }

    if (rmcp.messageClass === RMCP_CLASS_OEM && rmcp.sequence !== RMCP_SEQ_NO_ACK) {
      let notice: OwnerNotice;
      try {
        notice = decodeOwnerNotice(body);
      } catch (e) {
        this.drop(e);
        return effects;
      }
      this.counters.accepted.secure++;
      const fresh = notice.epoch >= this.ownerEpoch;
      if (fresh) this.ownerEpoch = notice.epoch;
      else this.count('stale_owner');
      if (fresh) effects.push({ kind: 'owner', notice, from });
      return effects;
    }
    if (rmcp.messageClass === RMCP_CLASS_IPMI && rmcp.sequence === RMCP_SEQ_NO_ACK) {
      // The one IPMI message taken under the SA: the station's PET Acknowledge of an alert (docs/ALERTS.md).
      let ackd: PetAck;
      try {
        ackd = decodePetAck(body);
      } catch (e) {
        this.drop(e);
        return effects;
      }
      this.counters.accepted.secure++;
      effects.push({ kind: 'alert-ack', ack: ackd });
      return effects;
    }
    if (!asf) {
      // Acknowledged (above) and disregarded.
      this.drop(asfError ?? new ProtocolError('E_CLASS', `RMCP class ${rmcp.messageClass} is not ASF`));
      return effects;
    }
    this.counters.accepted.secure++;

    if (isCommand(asf)) {
      // A command's identity: its epoch, RMCP sequence, ASF tag and type. Recorded before it runs, so a
      // retransmission (also one that arrives after a power loss) is acknowledged and not run again. A command sent
      // with sequence 0xFF asked for no ACK and cannot be retransmitted: it runs, unrecorded.
      const recorded = identity && { ...identity, firstEpoch: this.state.firstEpoch(identity) };
      if (recorded && this.state.executed(recorded)) {
        this.counters.duplicatesAnswered++;
        return effects;
      }
      this.counters.executed++;
      effects.push({
        kind: 'log', level: 'info', msg: 'secure command accepted',
        fields: { command: asf.type, generation: gen, epoch: iv.epoch, from: `${from.address}:${from.port}`, hostState: this.hostState },
      });
      effects.push({ kind: 'host-command', command: asf.type, via: 'secure', from, rmcpSeq: rmcp.sequence, tag: asf.tag, generation: gen, identity: recorded });
      return effects;
    }

    // Any other request that asked for an ACK: answered from a short cache if retransmitted (keyed by epoch too: a
    // new epoch is a new station session). Sequence 0xFF (what the station uses for reads) is never cached.
    const key = rmcp.sequence !== RMCP_SEQ_NO_ACK ? `${iv.epoch}:${rmcp.sequence}:${asf.tag}:${asf.type}` : null;
    const hit = key !== null ? this.cache?.get(key) : undefined;
    if (hit) {
      this.counters.duplicatesAnswered++;
      for (const a of hit) send(encodeRmcpAsf(RMCP_SEQ_NO_ACK, a), K_RESPONSE);
      return effects;
    }
    const answers: AsfMessage[] = [];
    const a = this.answer(asf);
    if (a) {
      answers.push(a);
      send(encodeRmcpAsf(RMCP_SEQ_NO_ACK, a), K_RESPONSE);
    }
    if (key !== null) {
      this.cache ??= new Map();
      this.cache.set(key, answers);
      if (this.cache.size > RESPONSE_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    }
    return effects;
  }

  /**
   * Idle time after the answers went out: prepare the secure channel's next keystreams (SaEndpoint.prepareNext),
   * so the next secure request is answered with less work. Pure computation; safe to skip.
   */
  prepareNext(): void {
    this.channel.prepareNext();
  }

  /** Forget cached answers (the NIC lost power: RAM is gone). */
  powerLost(): void {
    this.cache = null;
  }

  // ---------------------------------------------------------------- answers

  /** The same answers on both ports: only commands differ between clear and secure (DESIGN §2.1). */
  private answer(req: AsfMessage): AsfMessage | null {
    switch (req.type) {
      case 'presence-ping':
        // Supported Interactions bit 7: RMCP security extensions (our ESP channel on 664) are supported.
        return presencePong(req.tag, { ipmi: this.lanplus(), secure: true });
      case 'capabilities-request': {
        const p = this.clearPolicy();
        // System Capabilities (DSP0136 §3.2.4.3 byte 11): bits 7:4 = on either port, bits 3:0 = secure port only.
        let sys = 0;
        const order: AsfCommandEvent[] = ['reset', 'power-up', 'power-down', 'power-cycle'];
        order.forEach((c, i) => {
          const clearOk = p.clearManagement && (p.allowedClearCommands & CLEAR_COMMAND_BIT[c]) !== 0;
          sys |= clearOk ? 0x80 >> i : 0x08 >> i;
        });
        return {
          type: 'capabilities-response', tag: req.tag, iana: 4542, oem: 0,
          specialCommands: 0x001f, systemCapabilities: sys, firmwareCapabilities: 0,
        };
      }
      case 'system-state-request':
        return { type: 'system-state-response', tag: req.tag, systemState: systemStateCode(this.hostState), watchdogExpired: false };
      default:
        // Responses sent to us, or messages we do not serve: ASF says acknowledge (done above) and disregard.
        return null;
    }
  }

  /**
   * Count a dropped datagram by reason. A torn EEPROM write is not bad input but lost power: it propagates
   * so the shell can take the NIC down. Anything that is not a coded error is a bug; it is counted as
   * `internal` (tests assert that count stays 0) rather than crashing the NIC on hostile input.
   */
  drop(e: unknown): void {
    if (e instanceof TornWriteError) throw e;
    const code: ErrorCode = e instanceof LifelineError ? e.code : 'E_INTERNAL';
    this.count(code.replace(/^E_/, '').toLowerCase());
    if (!(e instanceof LifelineError)) this.lastInternalError = e instanceof Error ? e.stack ?? e.message : String(e);
  }

  /** Count a drop under `reason` (error codes without E_, lower-case). */
  count(reason: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    this.onDrop?.(reason);
  }

  /** Observer of drops by reason (the NIC machine's security alerts: replays and ICV failures). */
  onDrop: ((reason: string) => void) | null = null;

  /** The last non-coded error swallowed by drop(), for diagnosis. */
  lastInternalError: string | null = null;
}

function isCommand(m: AsfMessage): m is Extract<AsfMessage, { type: AsfCommandEvent }> {
  return m.type === 'reset' || m.type === 'power-up' || m.type === 'power-down' || m.type === 'power-cycle';
}

