/**
 * A station's decisions about the NICs it talks to (DESIGN §5), apart from the process that hosts them: its lease
 * on each NIC (one owner per NIC, fenced by epoch), one secure session per NIC, one key exchange per NIC at a time,
 * takeovers, and the administrator's steps (enrolment, manual keying) through the emulator's control. Everything
 * comes in: the store, the env (time, timers, randomness, IKE sockets), the secure socket, the emulator's control.
 * mgmt-station/context.ts gives it the real ones; the simulator (sim/) virtual ones.
 */
import { LifelineError } from '../../common/errors.js';
import type { SaPair, SecurityPolicy } from '../../wire/sa.js';
import type { AlertRecord, Fence, Lease, LeaseResult, NicRecord, Store } from '../store/store.js';
import { KeyExchange, type ExchangeResult } from './key-exchange.js';
import { NicSession } from './session.js';
import type { SecurePort, StationEnv } from './env.js';

/** What the emulator's control says of a NIC (GET /v1/nics/:id), as much as the station needs. */
export interface EmulatorNic {
  id: string;
  /** The EEPROM's serial number (null while the NIC never booted; absent from an emulator of an earlier release). */
  serial?: string | null;
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
   * leases found held by another station where we had one, takeovers, NICs handed over (a rebalance), and key
   * exchanges by `kind|outcome` (kind: enroll or refresh; outcome: ok or the error code in lower case without E_,
   * e.g. ike_timeout).
   */
  readonly counters = { leaseRenewals: 0, leasesLost: 0, takeovers: 0, handovers: 0, keyExchanges: new Map<string, number>() };
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

  /** Is the NIC's session open (not being opened)? */
  hasSession(nic: string): boolean {
    return this.sessions.has(nic);
  }

  /** The lease this process holds on the NIC as of its last take or renewal (undefined: none). */
  heldFence(nic: string): Fence | undefined {
    return this.fences.get(nic);
  }

  /** Forget our own claim on a NIC (e.g. the lease could not be renewed). */
  dropSession(nic: string): void {
    this.sessions.get(nic)?.close();
    this.sessions.delete(nic);
    this.fences.delete(nic);
  }

  /**
   * Does `lease` (as a read of the store found it; undefined: no row yet) say that another station holds the NIC and
   * its lease has not lapsed? Then a poll round does not try to take it: that is a write transaction (a row lock in
   * SQL) that could only fail, every poll interval, for every NIC a standby does not own. What fence() does when
   * that write fails is done here: our claim, if we had one, is lost. A lease that lapses between the read and the
   * next round is taken then (one poll interval later at most).
   */
  heldElsewhere(lease: Lease | undefined): boolean {
    if (lease === undefined || lease.owner === null || lease.owner === this.o.stationId || this.now() >= lease.expiresAt) return false;
    if (this.fences.has(lease.nic)) this.counters.leasesLost++; // once: the daemon then drops our claim (dropSession)
    return true;
  }

  /**
   * A lease of ours as a read of the store found it (the owner is this station, live by its member row): hold its
   * fence without a write (a poll round renews the member row, not each lease: DaemonCore.tick). A lease taken again
   * under another epoch since this process last held it ends our stale session, as leaseTaken does.
   */
  holdLease(lease: Lease): Fence {
    const f = { station: this.o.stationId, epoch: lease.epoch };
    const old = this.fences.get(lease.nic);
    this.fences.set(lease.nic, f);
    this.counters.leaseRenewals++;
    if (old && old.epoch !== f.epoch) {
      this.sessions.get(lease.nic)?.close();
      this.sessions.delete(lease.nic);
    }
    return f;
  }

  /**
   * Nothing of this process is under way for the NIC: no session being opened, no key exchange or SA change, and
   * its session (if any) idle (NicSession.idle). The safe point at which a daemon may hand the NIC over.
   */
  quiet(nic: string): boolean {
    return !this.opening.has(nic) && !this.keying.has(nic) && (this.sessions.get(nic)?.idle ?? true);
  }

  /**
   * Hand NICs over (a rebalance, DESIGN §5): release the leases we hold on `nics` in one pass over the store
   * (Store.releaseLeases, fenced by our epochs) and drop our sessions on those released. Returns them.
   */
  async release(nics: readonly string[]): Promise<string[]> {
    const held = new Map<string, number>();
    for (const nic of nics) {
      const f = this.fences.get(nic);
      if (f) held.set(nic, f.epoch);
    }
    if (held.size === 0) return [];
    const released = await this.store.releaseLeases(held, this.o.stationId, this.now());
    for (const nic of released) this.dropSession(nic);
    this.counters.handovers += released.length;
    return released;
  }

  /** Take (or keep) this station's lease on the NIC; the fence guards every write that follows. */
  async fence(nic: string): Promise<Fence> {
    return this.leaseTaken(nic, await this.store.acquireLease(nic, this.o.stationId, this.now(), this.o.leaseMs));
  }

  /**
   * fence() for many NICs in one pass over the store (Store.acquireLeases: a daemon's poll round): per NIC its fence,
   * or the E_FENCED error fence() would have thrown. NICs the store does not know are left out.
   */
  async fenceAll(nics: readonly string[]): Promise<Map<string, Fence | LifelineError>> {
    const out = new Map<string, Fence | LifelineError>();
    for (const [nic, r] of await this.store.acquireLeases(nics, this.o.stationId, this.now(), this.o.leaseMs)) {
      try {
        out.set(nic, this.leaseTaken(nic, r));
      } catch (e) {
        out.set(nic, e as LifelineError);
      }
    }
    return out;
  }

  /** What a lease acquisition means for this process: a fence (and a takeover noted, a stale session dropped), or E_FENCED. */
  private leaseTaken(nic: string, r: LeaseResult): Fence {
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
    // A lapsed lease taken, or one another station handed over (free at an epoch above 0): the NIC is told of its new
    // owner (DaemonCore.afterTakeover) and our first sync ends the former owner's epochs.
    if (r.takeover || (r.previousOwner === null && r.lease.epoch > 1 && !old)) {
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
   * sent and never saw acknowledged (core/session.ts). A lease this process holds (a daemon's poll round took or
   * held it) is used as it is, not taken again: a write per session opened that a takeover of thousands of NICs
   * made thousands of times (issue 16). It is the fence an open session of the NIC would use just the same; a lease
   * lost meanwhile fails the session's first fenced write (E_FENCED), and the next round drops the claim.
   * `record`: the NIC's record as the caller has just read it (not read again).
   */
  async session(nic: string, known?: { fence: Fence; record: NicRecord; sa?: SaPair } | { record: NicRecord }): Promise<NicSession> {
    const have = this.sessions.get(nic);
    if (have) return have;
    let opening = this.opening.get(nic);
    if (!opening) {
      opening = (async () => {
        // `known`: the lease and record a key exchange of this process has just taken and used, and the SA it has just
        // stored and activated (not read again).
        const held = this.fences.get(nic);
        const fence = known && 'fence' in known ? (held?.epoch === known.fence.epoch ? known.fence : await this.fence(nic)) : (held ?? (await this.fence(nic)));
        const sa = known && 'sa' in known ? known.sa : undefined;
        const s = await NicSession.open(known?.record ?? nic, { store: this.store, port: await this.o.port(), fence, env: this.env, takeover: this.takeovers.has(nic), log: this.o.log, onAccepted: this.o.onAccepted, onAlert: (a) => this.o.onAlert?.(a), reserveBlock: this.o.reserveBlock }, sa);
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

  /**
   * keyExchange for a caller that already holds `exclusiveKeying(nic.id)`; counted by kind and outcome (`counters`).
   * `fence`: the lease the caller took a moment ago (enroll), not taken again.
   */
  async keyExchangeExclusive(nic: NicRecord, kind: 'enroll' | 'refresh', timeoutMs: number, fence?: Fence): Promise<ExchangeResult> {
    let outcome = 'ok';
    try {
      return await this.runKeyExchange(nic, kind, timeoutMs, fence);
    } catch (e) {
      outcome = outcomeOf(e);
      throw e;
    } finally {
      const k = `${kind}|${outcome}`;
      this.counters.keyExchanges.set(k, (this.counters.keyExchanges.get(k) ?? 0) + 1);
    }
  }

  private async runKeyExchange(nic: NicRecord, kind: 'enroll' | 'refresh', timeoutMs: number, taken?: Fence): Promise<ExchangeResult> {
    const fence = taken ?? (await this.fence(nic.id));
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
    // A session opened here, now, reads the SAs the exchange has just stored: only one open before needs a reload.
    // The SA just committed, as this process stored it: the session does not read its keys back.
    const sa = kx.lastActivated?.generation === r.generation ? kx.lastActivated : undefined;
    kx.lastActivated = null; // handed over: the session holds it from now on
    const opened = this.sessions.has(nic.id) || this.opening.has(nic.id);
    const s = await this.session(nic.id, { fence, record: nic, sa });
    if (opened) await s.reload(sa);
    // Without answer polling (lib/answer-poll.ts): nobody waits on this ping's round trip, and a fleet verb keying 32
    // NICs at a time would otherwise keep the event loop spinning between its datagrams, on a CPU the NICs' host needs.
    await s.read('presence-ping', 2000, true).catch(() => undefined);
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
      assertSameNic(await this.store.getNic(st.id), emu, st);
      const record = (existing: NicRecord | null): NicRecord => ({
        id: st.id, address: st.address, securePort: st.ports.secure, clearPort: st.ports.clear, ikePort: st.ports.ike, psk,
        enrolledAt: this.now(), meta: { ...(existing?.meta ?? {}), ...nicMeta(emu, st), enrolled: true },
      });
      // A NIC new to the store must be there before it can be leased; inserted only if absent, so a station
      // that then loses the lease (E_FENCED) never replaces the winner's record. Only the holder writes it.
      const fresh = record(null);
      const inserted = await this.store.addNicIfAbsent(fresh);
      const fence = await this.fence(st.id);
      await emu.setTrustAnchor(st.id, psk);
      // Inserted by this call and leased for the first time (epoch 1: nobody else ever held it, so nobody else
      // wrote its record since): the stored record is `fresh`, not read and written again.
      const untouched = inserted && fence.epoch === 1;
      const enrolled = untouched ? fresh : record(await this.store.getNic(st.id));
      if (!untouched) await this.store.updateNic(enrolled, fence);
      return this.keyExchangeExclusive(enrolled, 'enroll', timeoutMs, fence);
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
      assertSameNic(await this.store.getNic(st.id), emu, st);
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
        await s.read('presence-ping', 2000, true).catch(() => undefined);
      }
      return { nic: st.id, generation, policy: sa.policy, transform: sa.transform, toNicSpi: sa.toNic.spi, fromNicSpi: sa.fromNic.spi };
    });
  }

  /**
   * The other station whose unexpired lease holds each NIC (free, lapsed or this station's: absent), in one read of
   * the leases (fleet verbs, GET /v1/nics).
   */
  async ownersElsewhere(): Promise<Map<string, string>> {
    const now = this.now();
    const owners = new Map<string, string>();
    for (const l of await this.store.listLeases()) if (l.owner && l.owner !== this.o.stationId && l.expiresAt > now) owners.set(l.nic, l.owner);
    return owners;
  }

  /**
   * Catch up with SA changes another process made in the store (a CLI run with --no-daemon, a station on another
   * host with our cluster key): if the store's active SA is not the one this process's session sends on, reload
   * the session from the store, so it does not go on sending under an SA the NIC has retired. A NIC whose
   * address or ports changed (re-enrolled) gets a new session. The key exchange driver is checked the same way
   * before each use (keyExchangeExclusive). Cheap when nothing changed: one read of the active SA, none when the
   * caller read every NIC's active generation at once (`activeGeneration`: the daemon's poll round).
   */
  async syncWithStore(nic: NicRecord, activeGeneration?: number | null): Promise<void> {
    const s = this.sessions.get(nic.id);
    if (!s) return;
    if (s.nic.address !== nic.address || s.nic.securePort !== nic.securePort) {
      this.dropSession(nic.id);
      return;
    }
    // `activeGeneration`: what a poll round read for every NIC at once (Store.activeGenerations); else read here.
    const active = activeGeneration !== undefined ? activeGeneration : ((await this.store.getActiveSa(nic.id))?.pair.generation ?? null);
    if (active !== s.activeGeneration) await s.reload();
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
 * The store keys NICs by id, and ids are given by emulators (`nic-N`, or `PREFIX-nic-N` with --id-prefix): two
 * emulators started with the same prefix give two NICs one id. Enrolment (and `sa manual`) of a NIC the store holds
 * with another EEPROM serial, reached through another emulator or at another address, would silently turn the
 * record (and its SAs, command log and sequence numbers) over to a different NIC: E_NIC_IDENTITY instead, nothing
 * changed. Another serial through the same emulator at the same address is the same NIC slot formatted anew (its
 * EEPROM file deleted), which an administrator enrols again. A record or an emulator without serials (earlier
 * releases) is not checked; the serial is recorded from then on.
 */
function assertSameNic(existing: NicRecord | null, emu: EmulatorControl, st: EmulatorNic): void {
  const was = existing?.meta.serial;
  if (!existing || typeof was !== 'string' || typeof st.serial !== 'string' || was === st.serial) return;
  const moved = existing.meta.emulator !== emu.name || existing.address !== st.address || existing.securePort !== st.ports.secure;
  if (!moved) return;
  throw new LifelineError(
    'E_NIC_IDENTITY',
    `${st.id}: this station enrolled ${st.id} as serial ${was} at ${existing.address}:${existing.securePort} (emulator ${String(existing.meta.emulator ?? '?')}), ` +
      `but emulator ${emu.name} has a NIC ${st.id} with serial ${st.serial} at ${st.address}:${st.ports.secure}: two emulators give out the same NIC ids. ` +
      `Start each emulator with its own --id-prefix (nic-emulator start --id-prefix lab-b); nothing was changed`,
  );
}

/**
 * What enrolment and `sa manual` record of the NIC in its meta: the emulator it was reached through, the EEPROM's
 * serial (assertSameNic) and the NIC's inbound checkpoint block K (DESIGN §2.6).
 */
function nicMeta(emu: EmulatorControl, st: EmulatorNic): Record<string, unknown> {
  const k = st.sa?.checkpointBlock;
  const policy = st.config?.securityPolicy;
  return {
    emulator: emu.name,
    ...(typeof st.serial === 'string' ? { serial: st.serial } : {}),
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
