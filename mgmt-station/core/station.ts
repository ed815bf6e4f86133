/**
 * A station's decisions about the NICs it talks to (DESIGN §5), apart from the process that hosts them: its lease
 * on each NIC (one owner per NIC, fenced by epoch), one secure session per NIC, one key exchange per NIC at a time,
 * takeovers, and the administrator's steps (enrolment, manual keying) through the emulator's control. Everything
 * comes in: the store, the env (time, timers, randomness, IKE sockets), the secure socket, the emulator's control.
 * mgmt-station/context.ts gives it the real ones; the simulator (sim/) virtual ones.
 */
import { LifelineError } from '../../common/errors.js';
import type { SaPair, SecurityPolicy } from '../../wire/sa.js';
import type { AlertRecord, Fence, NicRecord, Store } from '../store/store.js';
import { KeyExchange, type ExchangeResult } from './key-exchange.js';
import { NicSession } from './session.js';
import type { SecurePort, StationEnv } from './env.js';

/** What the emulator's control says of a NIC (GET /v1/nics/:id), as much as the station needs. */
export interface EmulatorNic {
  id: string;
  address: string;
  ports: { clear: number; secure: number; ike: number };
  /** The NIC's SA database; null while it is not running. `checkpointBlock`: K of DESIGN §2.6. */
  sa?: { checkpointBlock?: number } | null;
  /** The NIC's configuration: its security policy is the one IKE must key for (protocol/README.md, esp+ah). */
  config?: { securityPolicy?: string } | null;
}

/** The administrator's access to a NIC (the emulator's control API, standing in for the host driver). */
export interface EmulatorControl {
  /** How the NIC's meta names the emulator (HOST:PORT). */
  readonly name: string;
  nic(id: string): Promise<EmulatorNic>;
  setTrustAnchor(id: string, psk: Uint8Array): Promise<void>;
  installSa(id: string, sa: SaPair): Promise<{ generation: number }>;
}

export interface StationCoreOptions {
  stationId: string;
  leaseMs: number;
  store: Store;
  env: StationEnv;
  /** The station's secure socket, opened on first use. */
  port: () => Promise<SecurePort>;
  /** Local address of IKE sockets. */
  bind?: string;
  log?: (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;
  /** Observer of the NIC datagrams this station's sessions accepted (the simulator's replay check). */
  onAccepted?: (bytes: Uint8Array) => void;
  /** Observer of each alert a session of this station stored (docs/ALERTS.md; the daemon logs them). */
  onAlert?: (a: AlertRecord) => void;
  /** Observer of each session opened (its command log verified): the simulator's check that none opens on an edited log. */
  onSessionOpen?: (nic: string) => void;
  /** Outbound sequence numbers a session claims in the store at a time (default 1024; the simulator varies it). */
  reserveBlock?: bigint;
  /** A held IKE SA is rekeyed (RFC 7296 §2.18) before a refresh once it is this old (ms; default 4 h). */
  ikeRekeyMs?: number;
}

export class StationCore {
  readonly store: Store;
  readonly env: StationEnv;
  private sessions = new Map<string, NicSession>();
  private fences = new Map<string, Fence>();
  private exchanges = new Map<string, KeyExchange>();
  private opening = new Map<string, Promise<NicSession>>();
  /** Per NIC, the tail of the key exchanges and SA changes this process runs: one at a time (exclusiveKeying). */
  private keying = new Map<string, Promise<unknown>>();
  /** NICs this process took over from another station (their first sync ends the former owner's epochs). */
  readonly takeovers = new Set<string>();
  /**
   * What this process did, for the daemon's /metrics (mgmt-station/station-metrics.ts): leases taken or renewed,
   * leases found held by another station where we had one, takeovers, and key exchanges by `kind|outcome` (kind:
   * enroll or refresh; outcome: ok or the error code in lower case without E_, e.g. ike_timeout).
   */
  readonly counters = { leaseRenewals: 0, leasesLost: 0, takeovers: 0, keyExchanges: new Map<string, number>() };
  /**
   * Where the key exchanges report what a user of a long-running station should see (the IKE SA's mode, IKE SA
   * rekeys, the peer's own Child SA rekeys, fallbacks, retries); `o.log` when unset. The daemon sets its logger.
   */
  keyingLog: StationCoreOptions['log'] = undefined;

  constructor(readonly o: StationCoreOptions) {
    this.store = o.store;
    this.env = o.env;
  }

  now(): number {
    return this.env.now();
  }

  /** NICs this process holds a lease on, as of its last renewal of each (a lease found lost is dropped). */
  get leasesHeld(): number {
    return this.fences.size;
  }

  /** What this process dropped, by reason, per NIC session. */
  sessionDrops(): Record<string, Record<string, number>> {
    const nics: Record<string, Record<string, number>> = {};
    for (const [id, s] of this.sessions) nics[id] = { ...s.counters.dropped };
    return nics;
  }

  /** Forget our own claim on a NIC (e.g. the lease could not be renewed). */
  dropSession(nic: string): void {
    this.sessions.get(nic)?.close();
    this.sessions.delete(nic);
    this.fences.delete(nic);
  }

  /** Take (or keep) this station's lease on the NIC; the fence guards every write that follows. */
  async fence(nic: string): Promise<Fence> {
    const r = await this.store.acquireLease(nic, this.o.stationId, this.now(), this.o.leaseMs);
    if (!r.acquired) {
      if (this.fences.has(nic)) this.counters.leasesLost++; // once: the daemon then drops our claim (dropSession)
      throw new LifelineError(
        'E_FENCED',
        `${nic} is owned by station '${r.lease.owner}' (epoch ${r.lease.epoch}) for another ${Math.max(0, r.lease.expiresAt - this.now())} ms; use that station (--id) or wait for its lease to lapse`,
      );
    }
    const f = { station: this.o.stationId, epoch: r.lease.epoch };
    const old = this.fences.get(nic);
    this.fences.set(nic, f);
    this.counters.leaseRenewals++;
    if (r.takeover) {
      this.takeovers.add(nic);
      this.counters.takeovers++;
    }
    if (old && old.epoch !== f.epoch) {
      // We lost the NIC and got it back: our session's fence is stale.
      this.sessions.get(nic)?.close();
      this.sessions.delete(nic);
    }
    return f;
  }

  /**
   * The secure session to a NIC, opened once per process (concurrent callers share the opening). Its first sync
   * settles the commands that an earlier owner — another station, or an earlier process of this one — logged as
   * sent and never saw acknowledged (core/session.ts).
   */
  async session(nic: string): Promise<NicSession> {
    const have = this.sessions.get(nic);
    if (have) return have;
    let opening = this.opening.get(nic);
    if (!opening) {
      opening = (async () => {
        const fence = await this.fence(nic);
        const s = await NicSession.open(nic, { store: this.store, port: await this.o.port(), fence, env: this.env, takeover: this.takeovers.has(nic), log: this.o.log, onAccepted: this.o.onAccepted, onAlert: (a) => this.o.onAlert?.(a), reserveBlock: this.o.reserveBlock });
        this.sessions.set(nic, s);
        this.o.onSessionOpen?.(nic);
        return s;
      })().finally(() => this.opening.delete(nic));
      this.opening.set(nic, opening);
    }
    return opening;
  }

  /**
   * Run `f` once every key exchange or SA change of `nic` this process started before has finished: one at a
   * time per NIC, in the order asked (DESIGN §2.5: the commit has one pending slot; two exchanges at once would
   * take each other's SA_READY). A refresh asked while one runs therefore waits for it and then runs its own.
   */
  exclusiveKeying<T>(nic: string, f: () => Promise<T>): Promise<T> {
    const run = (this.keying.get(nic) ?? Promise.resolve()).then(f);
    const tail = run.catch(() => undefined);
    this.keying.set(nic, tail);
    void tail.then(() => {
      if (this.keying.get(nic) === tail) this.keying.delete(nic);
    });
    return run;
  }

  /** Run an enrolment or a refresh for `nic` with this station's lease, after any other one of it (exclusiveKeying). */
  keyExchange(nic: NicRecord, kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    return this.exclusiveKeying(nic.id, () => this.keyExchangeExclusive(nic, kind, timeoutMs));
  }

  /** keyExchange for a caller that already holds `exclusiveKeying(nic.id)`; counted by kind and outcome (`counters`). */
  async keyExchangeExclusive(nic: NicRecord, kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    let outcome = 'ok';
    try {
      return await this.runKeyExchange(nic, kind, timeoutMs);
    } catch (e) {
      outcome = outcomeOf(e);
      throw e;
    } finally {
      const k = `${kind}|${outcome}`;
      this.counters.keyExchanges.set(k, (this.counters.keyExchanges.get(k) ?? 0) + 1);
    }
  }

  private async runKeyExchange(nic: NicRecord, kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    const fence = await this.fence(nic.id);
    let kx = this.exchanges.get(nic.id);
    if (kx && !sameIkePeer(kx.nic, nic)) {
      // Re-enrolled since (a new PSK, or the host agent moved): the old driver would authenticate with the old key.
      this.exchanges.delete(nic.id);
      await kx.close();
      kx = undefined;
    }
    if (!kx) {
      kx = new KeyExchange(nic, {
        store: this.store, fence: () => this.fences.get(nic.id) ?? fence, env: this.env, stationId: this.o.stationId, bind: this.o.bind, policy: nicPolicy(nic),
        ikeRekeyMs: this.o.ikeRekeyMs,
        log: (level, msg) => (this.keyingLog ?? this.o.log)?.(level === 'warn' ? 'warn' : 'info', msg, { nic: nic.id }),
        // A standard peer rekeyed the Child SA itself (plain IKEv2, §2.8): the session moves to it, after any
        // key exchange of ours that runs.
        onActivated: (id) => void this.exclusiveKeying(id, async () => this.sessions.get(id)?.reload()).catch(() => undefined),
      });
      this.exchanges.set(nic.id, kx);
    }
    const r = kind === 'enroll' ? await kx.enroll(timeoutMs) : await kx.refresh(timeoutMs);
    // Use the new SA at once (protocol/README.md shell contract): the NIC then retires the previous SA, and
    // the next refresh cannot start before a packet under this one has been answered.
    const s = await this.session(nic.id);
    await s.reload();
    await s.read('presence-ping', 2000).catch(() => undefined);
    return r;
  }

  /**
   * `enroll NIC --psk-file F`: write the PSK into the NIC as its trust anchor (the administrator's step, DESIGN §3)
   * and record it, then IKE_SA_INIT + IKE_AUTH + the two-phase commit (DESIGN §2.4-2.5). The lease comes first: a
   * NIC another station owns keeps its trust anchor and its stored PSK (E_FENCED, nothing changed); a NIC the
   * store does not know has no lease yet, so it is recorded, then leased. One at a time with the NIC's other key
   * exchanges. Used by the CLI and, forwarded to it, by the daemon (so its driver then holds the new PSK).
   */
  async enroll(emu: EmulatorControl, nicId: string, psk: Uint8Array, timeoutMs: number): Promise<ExchangeResult> {
    const st = await emu.nic(nicId);
    return this.exclusiveKeying(st.id, async () => {
      const record = (existing: NicRecord | null): NicRecord => ({
        id: st.id, address: st.address, securePort: st.ports.secure, clearPort: st.ports.clear, ikePort: st.ports.ike, psk,
        enrolledAt: this.now(), meta: { ...(existing?.meta ?? {}), ...nicMeta(emu, st), enrolled: true },
      });
      // A NIC new to the store must be there before it can be leased; inserted only if absent, so a station
      // that then loses the lease (E_FENCED) never replaces the winner's record. Only the holder writes it.
      await this.store.addNicIfAbsent(record(null));
      const fence = await this.fence(st.id);
      await emu.setTrustAnchor(st.id, psk);
      const enrolled = record(await this.store.getNic(st.id));
      await this.store.updateNic(enrolled, fence);
      return this.keyExchangeExclusive(enrolled, 'enroll', timeoutMs);
    });
  }

  /**
   * `sa manual NIC` (RFC 4301 manual keying): install `sa` in the NIC through the emulator's control (standing in
   * for the host driver), store it active under this station's lease, and move an open session to it (used at
   * once, so the NIC retires the SA before it). One at a time with the NIC's key exchanges.
   */
  async installManualSa(emu: EmulatorControl, nicId: string, sa: SaPair): Promise<{ nic: string; generation: number; policy: string; transform: string; toNicSpi: number; fromNicSpi: number }> {
    const st = await emu.nic(nicId);
    return this.exclusiveKeying(st.id, async () => {
      const record = (existing: NicRecord | null): NicRecord => ({
        id: st.id, address: st.address, securePort: st.ports.secure, clearPort: st.ports.clear, ikePort: st.ports.ike,
        psk: existing?.psk ?? this.env.random(32), enrolledAt: existing?.enrolledAt ?? this.now(),
        meta: { ...(existing?.meta ?? {}), ...nicMeta(emu, st) },
      });
      // As in enroll: a new NIC is inserted only if absent, then leased; only the lease holder updates it.
      await this.store.addNicIfAbsent(record(null));
      const fence = await this.fence(st.id);
      await this.store.updateNic(record(await this.store.getNic(st.id)), fence);
      const { generation } = await emu.installSa(st.id, sa);
      await this.store.putSa(st.id, { pair: { ...sa, generation }, state: 'pending', ike: null }, this.now(), fence);
      await this.store.activateSa(st.id, generation, this.now(), fence);
      const s = this.sessions.get(st.id);
      if (s) {
        await s.reload();
        await s.read('presence-ping', 2000).catch(() => undefined);
      }
      return { nic: st.id, generation, policy: sa.policy, transform: sa.transform, toNicSpi: sa.toNic.spi, fromNicSpi: sa.fromNic.spi };
    });
  }

  /** The other station whose unexpired lease holds `nic`, or null (free, lapsed, or this station's). */
  async ownerElsewhere(nic: string): Promise<string | null> {
    const lease = await this.store.getLease(nic);
    return lease?.owner && lease.owner !== this.o.stationId && lease.expiresAt > this.now() ? lease.owner : null;
  }

  /**
   * Catch up with SA changes another process made in the store (a CLI run with --no-daemon, a station on another
   * host with our cluster key): if the store's active SA is not the one this process's session sends on, reload
   * the session from the store, so it does not go on sending under an SA the NIC has retired. A NIC whose
   * address or ports changed (re-enrolled) gets a new session. The key exchange driver is checked the same way
   * before each use (keyExchangeExclusive). Cheap when nothing changed: one read of the active SA.
   */
  async syncWithStore(nic: NicRecord): Promise<void> {
    const s = this.sessions.get(nic.id);
    if (!s) return;
    if (s.nic.address !== nic.address || s.nic.securePort !== nic.securePort) {
      this.dropSession(nic.id);
      return;
    }
    const active = await this.store.getActiveSa(nic.id);
    if ((active?.pair.generation ?? null) !== s.activeGeneration) await s.reload();
  }

  /** End every session and key exchange (the store and the socket belong to the caller). */
  async close(): Promise<void> {
    for (const k of this.exchanges.values()) await k.close();
    this.exchanges.clear();
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }
}

/**
 * What enrolment and `sa manual` record of the NIC in its meta: the emulator it was reached through and the
 * NIC's inbound checkpoint block K (DESIGN §2.6).
 */
function nicMeta(emu: EmulatorControl, st: EmulatorNic): Record<string, unknown> {
  const k = st.sa?.checkpointBlock;
  const policy = st.config?.securityPolicy;
  return {
    emulator: emu.name,
    ...(Number.isSafeInteger(k) && k! >= 1 ? { checkpointBlock: k } : {}),
    ...(policy === 'esp' || policy === 'esp+ah' ? { policy } : {}),
  };
}

/**
 * The policy a key exchange keys for: the NIC's, as its emulator reported it at enrolment. IKEv2 has no ESP+AH
 * bundle in one proposal, so both ends take it from configuration (protocol/README.md); keyed for 'esp', a NIC
 * configured 'esp+ah' would expect AH keys the station never derived, and drop every packet.
 */
function nicPolicy(nic: NicRecord): SecurityPolicy {
  return nic.meta.policy === 'esp+ah' ? 'esp+ah' : 'esp';
}

/** Same host agent, same pre-shared key and policy: a KeyExchange made for `a` can serve `b`. */
function sameIkePeer(a: NicRecord, b: NicRecord): boolean {
  return a.address === b.address && a.ikePort === b.ikePort && nicPolicy(a) === nicPolicy(b) && a.psk.length === b.psk.length && a.psk.every((x, i) => x === b.psk[i]);
}

/** An outcome as the daemon's /metrics labels it: 'ok', or the error's code in lower case without E_ ('internal' uncoded). */
export function outcomeOf(e: unknown): string {
  const code = e instanceof LifelineError ? e.code : 'E_INTERNAL';
  return code.replace(/^E_/, '').toLowerCase();
}
