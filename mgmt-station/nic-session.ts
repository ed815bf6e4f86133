/**
 * The station's secure channel to one NIC: the SA endpoints it holds (active and previous, DESIGN §2.5),
 * the sequence-number reservations it keeps in the store (DESIGN §2.6), and request/response matching with
 * retransmission.
 *
 * Reads (Presence Ping, Capabilities, System State) use RMCP sequence 0xFF (no ACK, never cached by the
 * NIC) and are matched by message type and ASF tag. Commands (Reset, Power-Up, Power-Down, Power Cycle)
 * are appended to the NIC's command log first; the log index gives the RMCP sequence and ASF tag, so a
 * command keeps its identity across retransmissions and station restarts and the NIC's response cache
 * answers a retransmission without executing it twice (DESIGN §5). A command is reported done only after
 * the NIC's RMCP ACK arrived *and* the outcome is durable in the store ("replicate before acknowledging").
 *
 * After two consecutive unanswered attempts on an SA (counted across requests, so that short polls, which make
 * one or two attempts, get there too; any authenticated packet from the NIC on that SA resets the count) the
 * session jumps its outbound sequence number past the NIC's checkpoint block (firmware/sa-database.ts
 * resumeAfterPeerRestart): a NIC that restarted treats everything up to its reserved inbound mark as replayed
 * (DESIGN §2.6), and this jump (the idea of RFC 6311's replay-counter sync) lets the next retransmission through.
 */
import { SaEndpoint } from '../wire/sa-endpoint.js';
import { encodeRmcpAsf, decodeRmcpAsf, type AsfMessage } from '../wire/asf.js';
import { RMCP_SEQ_NO_ACK, RMCP_PORT } from '../wire/rmcp.js';
import { decodeInnerUdp, encodeInnerUdp, maxSequence } from '../wire/esp.js';
import { encodeOwnerNotice } from '../wire/owner-notice.js';
import { LifelineError, ProtocolError } from '../common/errors.js';
import type { AhEndpoints } from '../wire/ah.js';
import { DEFAULT_CHECKPOINT_BLOCK, resumeAfterPeerRestart } from '../firmware/sa-database.js';
import type { Fence, NicRecord, Store, StoredSa } from './store/store.js';
import type { UdpMux } from './udp-mux.js';

export type ReadKind = 'presence-ping' | 'capabilities-request' | 'system-state-request';
export type CommandKind = 'reset' | 'power-up' | 'power-down' | 'power-cycle';

export interface SessionOptions {
  store: Store;
  mux: UdpMux;
  fence: Fence;
  now: () => number;
  /** Outbound sequence numbers reserved in the store per write (station side of DESIGN §2.6). */
  reserveBlock?: bigint;
  /** First retransmission after this many ms, doubling, capped at 1 s. */
  retransmitMs?: number;
  /**
   * This session starts after a takeover: resume one replay window (1024) above the reserved block, so that
   * nothing the former owner may still send from its reservation is accepted by the NIC (DESIGN §5).
   */
  takeover?: boolean;
}

/** The NIC's replay window (wire/replay-window.ts DEFAULT_REPLAY_WINDOW). */
const NIC_REPLAY_WINDOW = 1024n;

/** Commands in flight to one NIC (the NIC's response cache holds 256, firmware/nic-firmware.ts). */
export const MAX_COMMANDS_IN_FLIGHT = 16;

export interface RequestResult {
  nic: string;
  request: string;
  generation: number;
  attempts: number;
  rttMs: number;
  response: AsfMessage | { type: 'rmcp-ack'; sequence: number };
  command?: { index: number; rmcpSeq: number; tag: number };
}

/**
 * A verb's result, written out field by field: an object spread with added fields (`{ ...r, request }`) is slow in
 * V8 (a generic property copy), and this is on the path of every read's round trip (bench `lifeline.station`).
 */
function requestResult(
  r: { nic: string; generation: number; attempts: number; rttMs: number },
  request: string,
  response: RequestResult['response'],
  command?: RequestResult['command'],
): RequestResult {
  const out: RequestResult = { nic: r.nic, request, generation: r.generation, attempts: r.attempts, rttMs: r.rttMs, response };
  if (command) out.command = command;
  return out;
}

interface Held {
  stored: StoredSa;
  ep: SaEndpoint;
  inboundSpi: number;
  /** When this SA's counter last jumped (performance.now()); -Infinity: never, or an answer came since. */
  jumpedAt: number;
  /** Attempts on this SA in a row that got no answer, across requests; reset by any packet the NIC sends on it. */
  unanswered: number;
}

/** The NIC's checkpoint block K as recorded at enrolment (meta.checkpointBlock); the NIC's default if none. */
export function checkpointBlockOf(nic: NicRecord | null): bigint {
  const k = nic?.meta.checkpointBlock;
  return typeof k === 'number' && Number.isSafeInteger(k) && k >= 1 ? BigInt(k) : BigInt(DEFAULT_CHECKPOINT_BLOCK);
}

/**
 * While a NIC stays silent, its counter jumps again only after this long: each jump spends about 2.5 checkpoint
 * blocks of a 32-bit sequence space, and a NIC that is merely unreachable (cable pulled) would otherwise use it
 * up within days of polling. A second jump is needed only if the NIC took a jumped packet and restarted again.
 */
const REJUMP_AFTER_SILENCE_MS = 30_000;

interface Waiter { match: (m: AsfMessage | null, rmcpSeq: number, ack: boolean) => boolean; resolve: (r: { msg: AsfMessage | null; rmcpSeq: number; generation: number }) => void }

export class NicSession {
  readonly nic: NicRecord;
  private held: Held[] = [];
  private active: Held | null = null;
  private reservedOut = 0n;
  private waiters = new Set<Waiter>();
  private claiming: Promise<void> | null = null;
  private inFlight = 0;
  private queue: (() => void)[] = [];
  private closed = false;
  private tag: number;
  readonly counters = { accepted: 0, dropped: {} as Record<string, number> };

  private constructor(nic: NicRecord, private readonly o: SessionOptions) {
    this.nic = nic;
    this.tag = (o.now() & 0xff) ^ 0x5a;
  }

  /** Load the NIC's SAs and checkpoints from the store. */
  static async open(nicId: string, o: SessionOptions): Promise<NicSession> {
    const nic = await o.store.getNic(nicId);
    if (!nic) throw new LifelineError('E_NOT_FOUND', `NIC '${nicId}' is not known to this station; enrol it or key it with 'mgmt-station sa manual ${nicId}'`);
    const s = new NicSession(nic, o);
    await s.reload();
    return s;
  }

  /** (Re)read the SAs from the store: after a refresh, a takeover or an adoption. */
  async reload(): Promise<void> {
    for (const h of this.held) this.o.mux.unregister(h.inboundSpi);
    this.held = [];
    this.active = null;
    const sas = (await this.o.store.listSas(this.nic.id)).filter((s) => s.state === 'active' || s.state === 'previous');
    for (const stored of sas) {
      const cp = await this.o.store.getCheckpoint(this.nic.id, stored.pair.generation);
      const outReserved = cp?.outReserved ?? 0n;
      const max = maxSequence(stored.pair.esn);
      const wanted = outReserved + 1n + (this.o.takeover ? NIC_REPLAY_WINDOW : 0n);
      const outStart = wanted > max + 1n ? max + 1n : wanted; // max + 1 = exhausted: sends fail, never wrap
      const ep = new SaEndpoint(stored.pair, 'station', { outStart, inFloor: cp?.inHighest ?? 0n });
      const h: Held = { stored, ep, inboundSpi: ep.inboundSpi, jumpedAt: -Infinity, unanswered: 0 };
      this.held.push(h);
      this.o.mux.register(h.inboundSpi, (b, from) => this.onDatagram(h, b, from));
      if (stored.state === 'active') {
        this.active = h;
        this.reservedOut = outReserved;
      }
    }
  }

  close(): void {
    for (const h of this.held) this.o.mux.unregister(h.inboundSpi);
    this.held = [];
    // Waiting requests fail: a closed session (lost lease, shutdown) must never look like an answer.
    this.closed = true;
    for (const w of this.waiters) w.resolve({ msg: null, rmcpSeq: -1, generation: -1 });
    this.waiters.clear();
  }

  get activeGeneration(): number | null {
    return this.active?.stored.pair.generation ?? null;
  }

  // ------------------------------------------------------------------ requests

  /**
   * `background`: the daemon's periodic poll, which nobody waits for; it does not keep the event loop polling for
   * its answer (lib/answer-poll.ts), so a daemon polling many NICs does not spin a CPU for them.
   */
  async read(kind: ReadKind, timeoutMs: number, background = false): Promise<RequestResult> {
    const tag = (this.tag = (this.tag + 1) & 0xff);
    const want = ({ 'presence-ping': 'presence-pong', 'capabilities-request': 'capabilities-response', 'system-state-request': 'system-state-response' } as const)[kind];
    const msg = { type: kind, tag } as AsfMessage;
    const r = await this.exchange(encodeRmcpAsf(RMCP_SEQ_NO_ACK, msg), (m) => m !== null && m.type === want && m.tag === tag, timeoutMs, kind, !background);
    return requestResult(r, kind, r.msg!);
  }

  async command(kind: CommandKind, timeoutMs: number): Promise<RequestResult> {
    await this.enterCommand();
    try {
      const t0 = this.o.now();
      // The store gives the command its identity on the wire from its log index (store.ts wireIdentity): unique
      // per NIC across stations and restarts, so the NIC's response cache recognises a retransmission (DESIGN §5).
      const entry = await this.o.store.appendCommand(this.nic.id, { time: t0, command: kind, outcome: 'sent' }, this.o.fence);
      const { rmcpSeq, asfTag: tag } = entry;
      const msg = { type: kind, tag, bootOptions: null } as AsfMessage;
      let r;
      try {
        r = await this.exchange(encodeRmcpAsf(rmcpSeq, msg), (_m, seq, ack) => ack && seq === rmcpSeq, timeoutMs, kind);
      } catch (e) {
        // No ACK: the NIC may or may not have executed it. Say so, durably. (Nothing sent at all: failed.)
        const outcome = (e as LifelineError).code === 'E_SEQ_EXHAUSTED' ? 'failed' : 'unknown';
        await this.o.store.updateOutcome(this.nic.id, entry.index, outcome, this.o.now(), this.o.fence).catch(() => undefined);
        throw e;
      }
      // Second ack: the outcome and the sequence state are durable before the user hears "done".
      await this.persistInbound(r.generation);
      await this.o.store.updateOutcome(this.nic.id, entry.index, 'acked', this.o.now(), this.o.fence);
      return requestResult(r, kind, { type: 'rmcp-ack', sequence: rmcpSeq }, { index: entry.index, rmcpSeq, tag });
    } finally {
      this.leaveCommand();
    }
  }

  /** At most MAX_COMMANDS_IN_FLIGHT commands per NIC: far fewer than the NIC's response cache holds. */
  private async enterCommand(): Promise<void> {
    while (this.inFlight >= MAX_COMMANDS_IN_FLIGHT) await new Promise<void>((r) => this.queue.push(r));
    this.inFlight++;
  }

  private leaveCommand(): void {
    this.inFlight--;
    this.queue.shift()?.();
  }

  /**
   * Finish a command a former owner (or an earlier process of this station) logged as sent but never saw
   * acknowledged (DESIGN §5): resend it with its recorded RMCP sequence and ASF tag, so a NIC that executed it
   * answers from its response cache and one that did not executes it now. Outcome: 'acked', else 'unknown'.
   */
  async completeCommand(index: number, kind: CommandKind, rmcpSeq: number, tag: number, timeoutMs: number): Promise<boolean> {
    try {
      const r = await this.exchange(encodeRmcpAsf(rmcpSeq, { type: kind, tag, bootOptions: null } as AsfMessage), (_m, seq, ack) => ack && seq === rmcpSeq, timeoutMs, kind);
      await this.persistInbound(r.generation);
      await this.o.store.updateOutcome(this.nic.id, index, 'acked', this.o.now(), this.o.fence);
      return true;
    } catch {
      await this.o.store.updateOutcome(this.nic.id, index, 'unknown', this.o.now(), this.o.fence).catch(() => undefined);
      return false;
    }
  }

  /**
   * Tell the NIC that this station owns it now (wire/owner-notice.ts): it points its heartbeats and
   * alerts at `listen`. Authenticated by the SA; acknowledged by an RMCP ACK.
   */
  async notifyOwner(epoch: number, listen: { address: string; port: number }, timeoutMs: number): Promise<RequestResult> {
    const seq = (epoch % 254) + 1; // never 0xFF: the notice asks for an ACK
    const r = await this.exchange(encodeOwnerNotice(seq, { epoch, address: listen.address, port: listen.port }), (_m, s2, ack) => ack && s2 === seq, timeoutMs, 'owner notice');
    return requestResult(r, 'owner-notice', { type: 'rmcp-ack', sequence: seq });
  }

  private async exchange(
    rmcpAsf: Uint8Array,
    match: Waiter['match'],
    timeoutMs: number,
    what: string,
    pollForAnswer = true,
  ): Promise<{ nic: string; msg: AsfMessage | null; generation: number; attempts: number; rttMs: number }> {
    const h = this.active;
    if (!h) throw new LifelineError('E_NO_SA', `no active SA for ${this.nic.id}; run 'mgmt-station sa manual ${this.nic.id}' or 'mgmt-station enroll ${this.nic.id}'`);
    const t0 = performance.now();
    const inner = encodeInnerUdp(this.o.mux.port, RMCP_PORT, rmcpAsf);
    let attempts = 0;
    let settled: { msg: AsfMessage | null; rmcpSeq: number; generation: number } | null = null;
    const waiter: Waiter = { match, resolve: (r) => (settled = r) };
    const done = new Promise<void>((resolve) => {
      waiter.resolve = (r) => {
        settled = r;
        resolve();
      };
    });
    this.waiters.add(waiter);
    const poll = pollForAnswer ? this.o.mux.poll : null;
    poll?.open();
    try {
      let interval = this.o.retransmitMs ?? 250;
      const deadline = t0 + timeoutMs;
      while (!settled) {
        if (h.unanswered >= 2) await this.jumpOutbound(h);
        await this.sendOn(h, inner);
        attempts++;
        const wait = Math.min(interval, deadline - performance.now());
        if (wait <= 0) {
          h.unanswered++;
          break;
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, wait)))]);
        clearTimeout(timer);
        if (!settled) h.unanswered++;
        interval = Math.min(interval * 2, 1000);
        if (performance.now() >= deadline) break;
      }
    } finally {
      this.waiters.delete(waiter);
      poll?.close();
    }
    if (!settled) {
      throw new LifelineError('E_TIMEOUT', `no answer from ${this.nic.id} (${this.nic.address}:${this.nic.securePort}) to ${what} after ${attempts} attempts in ${timeoutMs} ms; is the emulator running and the NIC's link up?`);
    }
    const s = settled as { msg: AsfMessage | null; rmcpSeq: number; generation: number };
    if (s.generation < 0 || this.closed) throw new LifelineError('E_FENCED', `the session to ${this.nic.id} was closed before ${what} was answered (lease lost or station stopping)`);
    return { nic: this.nic.id, msg: s.msg, generation: s.generation, attempts, rttMs: performance.now() - t0 };
  }

  private async sendOn(h: Held, inner: Uint8Array): Promise<void> {
    // Every number comes from an exclusive block claimed in the store: two processes sending on one SA never
    // use the same sequence number (same nonce under one AES-GCM key, DESIGN §2.6).
    while (h.ep.nextOutSeq > this.reservedOut) {
      this.claiming ??= this.claim(h, h.ep.nextOutSeq).finally(() => (this.claiming = null));
      await this.claiming;
    }
    const bytes = h.ep.seal(inner, this.ahOut());
    this.o.mux.send(bytes, this.nic.securePort, this.nic.address);
    this.o.mux.poll.sent(); // poll for a waited-for answer rather than sleep until it wakes us (lib/answer-poll.ts)
    h.ep.prepareNext(); // while the NIC works: the keystream of its answer and of our next request
  }

  private async claim(h: Held, minNext: bigint): Promise<void> {
    const block = this.o.reserveBlock ?? 1024n;
    const max = maxSequence(h.stored.pair.esn);
    if (minNext > max) throw this.exhausted(h);
    const start = await this.o.store.claimOutbound(this.nic.id, h.stored.pair.generation, minNext, block, this.o.now(), this.o.fence);
    if (start > max) throw this.exhausted(h);
    h.ep.skipOutboundTo(start);
    this.reservedOut = start + block - 1n;
  }

  /** RFC 4303 §3.3.3: a counter never cycles; the SA must be replaced. */
  private exhausted(h: Held): LifelineError {
    return new LifelineError(
      'E_SEQ_EXHAUSTED',
      `${this.nic.id}: SA generation ${h.stored.pair.generation} has used every sequence number (RFC 4303 §3.3.3: it never wraps); refresh it: mgmt-station refresh ${this.nic.id}`,
    );
  }

  /** Skip past the NIC's reserved inbound block (see the file comment), at most once per silence of REJUMP_AFTER_SILENCE_MS. */
  private async jumpOutbound(h: Held): Promise<void> {
    const now = performance.now();
    if (now - h.jumpedAt < REJUMP_AFTER_SILENCE_MS) return;
    h.jumpedAt = now;
    await this.claiming;
    // The NIC's checkpoint block as the store has it now (recorded at enrolment and sa manual, also by another
    // process after this session opened): a jump by a smaller K than the NIC's falls short.
    const k = checkpointBlockOf(await this.o.store.getNic(this.nic.id).catch(() => null));
    await this.claim(h, resumeAfterPeerRestart(h.ep.nextOutSeq - 1n, k));
  }

  private async persistInbound(generation: number): Promise<void> {
    const h = this.held.find((x) => x.stored.pair.generation === generation);
    if (h) await this.o.store.recordInbound(this.nic.id, generation, h.ep.highestInSeq, this.o.now(), this.o.fence);
  }

  private ahOut(): AhEndpoints {
    return { srcAddr: this.o.mux.address, srcPort: this.o.mux.port, dstAddr: this.nic.address, dstPort: this.nic.securePort };
  }

  private ahIn(from: { address: string; port: number }): AhEndpoints {
    return { srcAddr: from.address, srcPort: from.port, dstAddr: this.o.mux.address, dstPort: this.o.mux.port };
  }

  private onDatagram(h: Held, bytes: Uint8Array, from: { address: string; port: number }): void {
    let payload: Uint8Array;
    try {
      payload = h.ep.open(bytes, this.ahIn(from)).payload;
      // The NIC takes our packets on this SA: no jump needed, and the next silence may jump at once.
      h.unanswered = 0;
      h.jumpedAt = -Infinity;
      const udp = decodeInnerUdp(payload);
      const pkt = decodeRmcpAsf(udp.body);
      this.counters.accepted++;
      for (const w of this.waiters) {
        if (w.match(pkt.asf, pkt.rmcp.sequence, pkt.rmcp.ack)) {
          w.resolve({ msg: pkt.asf, rmcpSeq: pkt.rmcp.sequence, generation: h.stored.pair.generation });
          this.waiters.delete(w);
          break;
        }
      }
    } catch (e) {
      const code = e instanceof ProtocolError || e instanceof LifelineError ? e.code : 'E_INTERNAL';
      const k = code.replace(/^E_/, '').toLowerCase();
      this.counters.dropped[k] = (this.counters.dropped[k] ?? 0) + 1;
    }
  }
}
