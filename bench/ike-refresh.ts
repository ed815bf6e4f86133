/**
 * Refresh throughput, in-process and sans-I/O: station (IkeInitiator) and host agent (IkeResponder) of
 * protocol/ exchange their datagrams directly (no sockets), the host side writing and committing SAs in a
 * real SaDatabase on a memory EEPROM, as the emulator's host agent does (firmware/host-agent.ts).
 *
 *  - full key exchange with commit: IKE_SA_INIT + IKE_AUTH + SA_READY / SA_ACK / SA_CONFIRM, until the
 *    station switches outbound; one fresh NIC each, N NICs one after another;
 *  - CREATE_CHILD_SA refresh (with PFS, the default) + commit, on the established IKE SAs.
 *
 * The protocol module is loaded at run time, so the bench still builds and runs while it is being
 * written; if it is missing or fails, the result is { skipped: reason }.
 */
import { randomBytes } from 'node:crypto';
import { MemoryEepromDevice } from '../firmware/eeprom-device.js';
import { EepromImage, EEPROM_SIZE } from '../firmware/eeprom-image.js';
import { SaDatabase } from '../firmware/sa-database.js';
import type { SaPair } from '../wire/sa.js';
import { figure, type Figure } from './stats.js';

type Effect = { kind: string; bytes?: Uint8Array; sa?: SaPair; generation?: number; message?: string };
interface Machine { receive(b: Uint8Array, now: number): Effect[] }
interface Initiator extends Machine { connect(now: number): Effect[]; refresh(now: number): Effect[]; readonly canRefresh: boolean }
interface ProtocolModule {
  IkeInitiator: new (o: Record<string, unknown>) => Initiator;
  IkeResponder: new (o: Record<string, unknown>) => Machine;
}

export type RefreshResult =
  | { skipped: string }
  | { fullExchanges: Figure; childRefreshes: Figure; nics: number; eepromPagesPerFullExchange: Figure; eepromPagesPerChildRefresh: Figure };

const random = (n: number) => new Uint8Array(randomBytes(n));

interface Peer { station: Initiator; host: Machine; db: SaDatabase; image: EepromImage }

/** Deliver datagrams both ways until quiet; true once the station switched outbound to a new SA. */
function run(p: Peer, first: Effect[], now: number): boolean {
  let toHost: Uint8Array[] = [];
  let switched = false;
  const fromStation = (fx: Effect[]) => {
    for (const e of fx) {
      if (e.kind === 'send') toHost.push(e.bytes!);
      else if (e.kind === 'switch-outbound') switched = true;
      else if (e.kind === 'failed' || e.kind === 'commit-aborted') throw new Error(`station: ${e.kind}: ${e.message}`);
    }
  };
  fromStation(first);
  for (let steps = 0; toHost.length > 0 && steps < 64; steps++) {
    const batch = toHost;
    toHost = [];
    for (const b of batch) {
      for (const e of p.host.receive(b, now)) {
        if (e.kind === 'send') fromStation(p.station.receive(e.bytes!, now));
        else if (e.kind === 'nic-write-pending') p.db.writePending(e.sa!);
        else if (e.kind === 'nic-commit') p.db.commitPending(e.generation);
        else if (e.kind === 'nic-discard') p.db.discardPending(e.generation);
        else if (e.kind === 'failed') throw new Error(`host: failed: ${e.message}`);
      }
    }
  }
  return switched;
}

export async function measureRefresh(nics: number, log: (s: string) => void): Promise<RefreshResult> {
  let mod: ProtocolModule;
  try {
    const path = '../protocol/index.js';
    mod = (await import(path)) as ProtocolModule;
    if (typeof mod.IkeInitiator !== 'function' || typeof mod.IkeResponder !== 'function') return { skipped: 'IKE module not built (protocol/index.js exports no IkeInitiator/IkeResponder)' };
  } catch (e) {
    return { skipped: `IKE module not built (${(e as Error).message.split('\n')[0]})` };
  }
  try {
    const psk = random(32);
    const peers: Peer[] = [];
    let now = 1_000_000;
    // The NICs' EEPROMs are formatted before the clock starts: enrolment, not key exchange.
    const nicsReady = Array.from({ length: nics }, (_, i) => {
      const image = EepromImage.format(new MemoryEepromDevice(EEPROM_SIZE), `nic-${i + 1}`, {
        securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'psk', key: psk }, clusterPolicy: '',
      });
      return { image, db: new SaDatabase(image), formatPages: image.pageWrites.total };
    });
    log(`  ${nics} full exchanges (IKE_SA_INIT + IKE_AUTH + commit)`);
    const t0 = performance.now();
    for (let i = 0; i < nics; i++) {
      const { image, db } = nicsReady[i];
      const id = `nic-${i + 1}.host.lifeline`;
      const station = new mod.IkeInitiator({ random, psk, id: 'station.lifeline', peerId: id });
      const host = new mod.IkeResponder({ random, psk, id, nextGeneration: db.nextGeneration(), policy: 'esp' });
      const p = { station, host, db, image };
      if (!run(p, station.connect(now), now)) throw new Error(`NIC ${i + 1}: the station never switched outbound after IKE_AUTH + commit`);
      peers.push(p);
      now += 1;
    }
    const fullS = (performance.now() - t0) / 1000;
    const pagesFull = peers.reduce((a, p, i) => a + p.image.pageWrites.total - nicsReady[i].formatPages, 0);
    const base = peers.map((p) => p.image.pageWrites.total);
    log(`  ${nics} CREATE_CHILD_SA refreshes + commit`);
    const t1 = performance.now();
    for (const p of peers) {
      if (!run(p, p.station.refresh(now), now)) throw new Error('a CREATE_CHILD_SA refresh never switched outbound');
      now += 1;
    }
    const childS = (performance.now() - t1) / 1000;
    const pagesChild = peers.reduce((a, p, i) => a + p.image.pageWrites.total - base[i], 0);
    const fresh = 'formatted 24C256 memory EEPROM per NIC (format pages excluded)';
    return {
      fullExchanges: figure(nics / fullS, 'exchanges/s', `${nics} NICs one after another: IKE_SA_INIT + IKE_AUTH (PSK, X25519, AES-GCM-16) + SA_READY/SA_ACK/SA_CONFIRM + EEPROM write/commit, station and host agent in one process (one core), no sockets`),
      childRefreshes: figure(nics / childS, 'refreshes/s', `${nics} CREATE_CHILD_SA (PFS, X25519) + two-phase commit on the established IKE SAs, in-process, no sockets`),
      nics,
      eepromPagesPerFullExchange: figure(pagesFull / nics, 'page writes', `pages per NIC for its first SA (write pending + commit); ${fresh}`),
      eepromPagesPerChildRefresh: figure(pagesChild / nics, 'page writes', 'pages per CREATE_CHILD_SA refresh (before the first packet under the new SA, which adds one checkpoint page)'),
    };
  } catch (e) {
    return { skipped: `IKE module present but the exchange failed: ${(e as Error).message.split('\n')[0]}` };
  }
}
