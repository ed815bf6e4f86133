/**
 * The emulated host's IKE agent (DESIGN §2.4): an IKEv2 responder that exists only while the host OS is up. On a
 * hung or powered-off machine nothing answers on the IKE port: the NIC machine (nic-machine.ts) hands it datagrams
 * only while the OS is up, and resets it when the OS goes down (its IKE SAs vanish; the EEPROM keeps what it wrote).
 *
 * It writes negotiated child SAs into its NIC's pending EEPROM slot and commits them on SA_ACK (standing in for
 * the host driver that programs the NIC); with a peer that did not announce the commit extension (a standard IKEv2
 * peer such as strongSwan) it writes and commits them before it answers the exchange (protocol/README.md, plain
 * mode). A restarted agent discards a pending slot no IKE SA can confirm any more (IkeResponder.recover). If an
 * EEPROM write fails, the rest of that batch of effects is not performed (nothing is announced that the NIC does not
 * hold): the error is thrown after the agent reset itself, and the machine reboots the NIC from its EEPROM.
 *
 * Each datagram's source goes to the responder: it is IPi in the §2.6 cookie and the key of the per-source limit of
 * half-open IKE SAs (RFC 8019), and the responder says where each datagram goes (an answer to its request's source,
 * a request of ours to the peer its IKE SA was made with), so a spoofed flood cannot redirect an SA_READY or a
 * retransmission. Pure: randomness injected, time an argument.
 */
import { IkeResponder, type FloodPolicy, type IkeEffect } from '../protocol/index.js';
import type { SaDatabase } from './sa-database.js';
import type { SecurityPolicy } from '../wire/sa.js';
import { addCounts, type IkeTotals } from './nic-totals.js';

export interface Endpoint { address: string; port: number }

export interface HostAgentOptions {
  nicId: string;
  random: (n: number) => Uint8Array;
  db: () => SaDatabase | null;
  psk: () => Uint8Array | null;
  policy: () => SecurityPolicy;
  commitTimeoutMs?: number;
  /** IKE_SA_INIT flood defence (protocol/ike/cookie.ts); unset fields take the protocol's defaults. */
  flood?: Partial<FloodPolicy>;
}

export interface AgentOutput {
  sends: { to: Endpoint; bytes: Uint8Array }[];
  logs: { level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> }[];
  /** An SA was committed into the NIC (it may now need its secure port). */
  committed: boolean;
}

/** An EEPROM write failed while the agent performed its effects; what was done before it is in `done`. */
export class AgentWriteError extends Error {
  constructor(override readonly cause: unknown, readonly done: AgentOutput) {
    super(`host agent: EEPROM write failed (${(cause as Error)?.message ?? String(cause)})`);
  }
}

export class HostAgent {
  private responder: IkeResponder | null = null;
  readonly counters = { received: 0, sent: 0, noTrustAnchor: 0, eepromFailures: 0, ikeRekeys: 0, unaddressed: 0 };
  /** What earlier responders counted (the agent is made anew when the OS comes up): status keeps the totals. */
  private readonly pastFlood = { dhComputations: 0, cookiesSent: 0, halfOpenExpired: 0, halfOpenEvicted: 0 };
  private readonly pastDrops = new Map<string, number>();

  constructor(private readonly o: HostAgentOptions) {}

  /** The OS went down, or the trust anchor changed: the agent and its IKE SAs are gone. */
  reset(): void {
    const r = this.responder;
    if (r) {
      const st = r.stats();
      for (const k of Object.keys(this.pastFlood) as (keyof HostAgent['pastFlood'])[]) this.pastFlood[k] += st[k];
      for (const [k, v] of Object.entries(r.drops)) this.pastDrops.set(k, (this.pastDrops.get(k) ?? 0) + v);
    }
    this.responder = null;
  }

  /**
   * The trust anchor changed while the OS runs (re-enrolment): the IKE SAs were authenticated under the old key, so
   * each gets an INFORMATIONAL { D(IKE) } (§1.4.1; sent once: the agent starts anew at once, no retransmission) and
   * a pending SA is discarded. The NIC keeps its committed SAs. Throws AgentWriteError like receive().
   */
  shutdown(now: number): AgentOutput {
    const out: AgentOutput = { sends: [], logs: [], committed: false };
    if (this.responder) this.perform(this.responder.shutdown(now), out);
    this.reset();
    return out;
  }

  /** A datagram on the IKE port (only while the OS is up). Throws AgentWriteError when an EEPROM write failed. */
  receive(bytes: Uint8Array, from: Endpoint, now: number): AgentOutput {
    this.counters.received++;
    const out: AgentOutput = { sends: [], logs: [], committed: false };
    const r = this.ensureResponder(out);
    if (!r) {
      this.counters.noTrustAnchor++;
      return out; // no PSK written at enrolment yet: nothing to authenticate with
    }
    this.perform(r.receive(bytes, now, { address: from.address, port: from.port }), out, from);
    return out;
  }

  /** The responder's deadline (retransmission, commit timeout), or null. */
  pollTimeout(): number | null {
    return this.responder?.pollTimeout() ?? null;
  }

  handleTimeout(now: number): AgentOutput {
    const out: AgentOutput = { sends: [], logs: [], committed: false };
    if (this.responder) this.perform(this.responder.handleTimeout(now), out);
    return out;
  }

  /**
   * An SA of `generation` was written to the NIC beside the agent (manual keying through the control API): the
   * agent's next negotiated SA must come after it, or its pending write would be refused.
   */
  noteGenerationUsed(generation: number): void {
    this.responder?.setNextGeneration(generation + 1);
  }

  private ensureResponder(out: AgentOutput): IkeResponder | null {
    if (this.responder) return this.responder;
    const db = this.o.db();
    const psk = this.o.psk();
    if (!db || !psk) return null;
    this.responder = new IkeResponder({
      random: this.o.random,
      psk,
      id: `${this.o.nicId}.host.lifeline`,
      nextGeneration: db.nextGeneration(),
      policy: this.o.policy(),
      commitTimeoutMs: this.o.commitTimeoutMs,
      flood: this.o.flood,
    });
    this.perform(this.responder.recover(db.pending?.generation ?? null), out);
    return this.responder;
  }

  /** `from`: the datagram these effects answer (a send the responder did not address goes back there). */
  private perform(fx: IkeEffect[], out: AgentOutput, from?: Endpoint): void {
    const db = this.o.db();
    for (const e of fx) {
      try {
        switch (e.kind) {
          case 'send': {
            const to = e.to?.port !== undefined ? { address: e.to.address, port: e.to.port } : from;
            if (to) {
              out.sends.push({ to, bytes: e.bytes });
              this.counters.sent++;
            } else this.counters.unaddressed++; // cannot happen: every responder request names its IKE SA's peer
            break;
          }
          case 'nic-write-pending':
            db!.writePending(e.sa);
            this.responder?.setNextGeneration(e.sa.generation + 1);
            break;
          case 'nic-commit':
            db!.commitPending(e.generation);
            out.committed = true;
            break;
          case 'nic-discard':
            db!.discardPending(e.generation);
            break;
          case 'log':
            if (e.level !== 'debug') out.logs.push({ level: e.level, msg: e.message, fields: { event: e.event } });
            break;
          case 'failed':
            out.logs.push({ level: 'warn', msg: e.message, fields: { code: e.code, scope: e.scope } });
            break;
          case 'ike-rekeyed':
            // §2.18: the IKE SA has new SPIs and keys; its Child SAs (the NIC's SAs) are unchanged.
            this.counters.ikeRekeys++;
            break;
          default:
            break;
        }
      } catch (err) {
        // An EEPROM write failed (e.g. torn by injected power loss): announce nothing more, restart the agent.
        this.counters.eepromFailures++;
        out.logs.push({ level: 'warn', msg: 'host agent: EEPROM write failed; agent restarts from the EEPROM', fields: { error: (err as Error).message } });
        this.reset();
        throw new AgentWriteError(err, out);
      }
    }
  }

  /** This agent's counters and gauges added to a fleet's (firmware/nic-totals.ts): status() without the objects. */
  addTotals(t: IkeTotals, running: boolean, now: number): void {
    const c = this.counters;
    t.received += c.received;
    t.sent += c.sent;
    t.noTrustAnchor += c.noTrustAnchor;
    t.eepromFailures += c.eepromFailures;
    t.ikeRekeys += c.ikeRekeys;
    t.dhComputations += this.pastFlood.dhComputations;
    t.cookiesSent += this.pastFlood.cookiesSent;
    t.halfOpenExpired += this.pastFlood.halfOpenExpired;
    t.halfOpenEvicted += this.pastFlood.halfOpenEvicted;
    for (const [k, v] of this.pastDrops) t.dropped[k] = (t.dropped[k] ?? 0) + v;
    if (running) t.running++;
    const r = this.responder;
    if (!r) return;
    const st = r.stats(now);
    t.dhComputations += st.dhComputations;
    t.cookiesSent += st.cookiesSent;
    t.halfOpenExpired += st.halfOpenExpired;
    t.halfOpenEvicted += st.halfOpenEvicted;
    t.halfOpen += st.halfOpen;
    if (st.cookieMode) t.cookieMode++;
    addCounts(t.dropped, r.drops);
  }

  /**
   * For `nic-emulator status`: the commit, the IKE SAs, the counters, drops by reason, and the flood defence (DH
   * computations, cookies sent, half-open IKE SAs and how many expired or were evicted), totals over the agent's
   * restarts. `now` tells whether cookies are being demanded.
   */
  status(running: boolean, now?: number): Record<string, unknown> {
    const r = this.responder;
    const st = r?.stats(now);
    const drops = new Map(this.pastDrops);
    for (const [k, v] of Object.entries(r?.drops ?? {})) drops.set(k, (drops.get(k) ?? 0) + v);
    const flood = {
      dhComputations: this.pastFlood.dhComputations + (st?.dhComputations ?? 0),
      cookiesSent: this.pastFlood.cookiesSent + (st?.cookiesSent ?? 0),
      halfOpenExpired: this.pastFlood.halfOpenExpired + (st?.halfOpenExpired ?? 0),
      halfOpenEvicted: this.pastFlood.halfOpenEvicted + (st?.halfOpenEvicted ?? 0),
      halfOpen: st?.halfOpen ?? 0,
      cookieMode: st?.cookieMode ?? false,
    };
    return { running, commit: r?.commitState ?? 'idle', sessions: r?.sessionStates ?? [], ...this.counters, drops: Object.fromEntries(drops), flood };
  }
}
