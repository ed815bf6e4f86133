/**
 * The tables of the in-memory store (memory-store.ts) as plain objects and Maps, and deep copies of them:
 * what a snapshot holds, what a restore puts back, and what `raw` hands to a test or the simulator that
 * plays someone with write access to the store but not the cluster key.
 *
 * Rows mirror the SQL tables (schema.ts) with camelCase fields; MACs and hashes are the same values the SQL
 * backends store. The SQL primary keys are the Map keys, so a raw edit cannot create a duplicate key either;
 * a command log is an array per NIC in index order (what `ORDER BY idx` reads), and an edit that inserts a
 * row should keep that order.
 */
import type { SaDirection, SaPair } from '../../wire/sa.js';
import type { SealedEntry, SealedHead } from './command-log.js';
import type { AlertRecord, IkeSaSnapshot, Lease, NicRecord, StationRecord, StoredSa } from './store.js';

/** A NIC as stored: `meta` as JSON text, as the SQL backends keep it (so it reads back the same). */
export interface MemoryNicRow extends Omit<NicRecord, 'meta'> {
  meta: string;
}

/** seq_checkpoints: mac = RowMacs.seqMac(nic, generation, outReserved, inHighest). */
export interface MemorySeqRow {
  nic: string;
  generation: number;
  outReserved: bigint;
  inHighest: bigint;
  updatedAt: number;
  mac: string;
}

/** sync_epochs: mac = RowMacs.syncMac(nic, maxEpoch). */
export interface MemorySyncRow {
  nic: string;
  maxEpoch: number;
  updatedAt: number;
  mac: string;
}

export interface MemoryTables {
  nics: Map<string, MemoryNicRow>;
  /** nic -> generation -> SA. */
  sas: Map<string, Map<number, StoredSa>>;
  /** nic -> generation -> checkpoint. */
  seqCheckpoints: Map<string, Map<number, MemorySeqRow>>;
  leases: Map<string, Lease>;
  /** nic -> its log rows in index order. */
  commandLog: Map<string, SealedEntry[]>;
  commandHeads: Map<string, SealedHead>;
  syncEpochs: Map<string, MemorySyncRow>;
  stations: Map<string, StationRecord>;
  /** station -> its member row's expiry (Store.renewMember). */
  members: Map<string, number>;
  /** Row id -> alert, ids increasing (docs/ALERTS.md). */
  alerts: Map<number, AlertRecord>;
}

/** What every connection of one memory store shares. */
export interface MemoryDatabase {
  /** The cluster key the rows are sealed under (store_meta cluster_key_id in SQL). */
  readonly keyId: string;
  readonly tables: MemoryTables;
  /** Inbound SPI -> the non-retired SA using it: the SQL unique index sas_inbound_spi (schema.ts), kept by memory-sas.ts. */
  readonly liveSpis: Map<number, StoredSa>;
  /** The highest alert id handed out (as SQL's AUTOINCREMENT: never again, also after its row is gone). */
  alertSeq?: number;
}

/** A deep copy of every table, MACs included, and the cluster key the rows are sealed under. */
export interface MemoryStoreSnapshot extends MemoryTables {
  readonly clusterKeyId: string;
}

/** The live tables someone with write access to the store could edit (memory-store.ts `raw`). */
export type RawTables = Pick<MemoryTables, 'commandLog' | 'commandHeads' | 'seqCheckpoints' | 'syncEpochs' | 'leases' | 'members'>;

export function emptyTables(): MemoryTables {
  return {
    nics: new Map(), sas: new Map(), seqCheckpoints: new Map(), leases: new Map(),
    commandLog: new Map(), commandHeads: new Map(), syncEpochs: new Map(), stations: new Map(), members: new Map(), alerts: new Map(),
  };
}

// --- copies: nothing a caller holds is ever a store row ---------------------------------------------

export const copyBytes = (b: Uint8Array): Uint8Array => new Uint8Array(b);

function copyDirection(d: SaDirection): SaDirection {
  return { spi: d.spi, encKey: copyBytes(d.encKey), ahSpi: d.ahSpi, ahKey: copyBytes(d.ahKey) };
}

/** Exactly the fields the SQL backends store of an SA pair. */
export function copyPair(p: SaPair): SaPair {
  return {
    generation: p.generation, transform: p.transform, esn: p.esn, policy: p.policy,
    toNic: copyDirection(p.toNic), fromNic: copyDirection(p.fromNic), origin: p.origin,
  };
}

/** Exactly the fields the SQL backends store of an IKE SA snapshot (row-codec.ts encodeIke). */
export function copyIke(s: IkeSaSnapshot): IkeSaSnapshot {
  return {
    spiI: copyBytes(s.spiI), spiR: copyBytes(s.spiR), skD: copyBytes(s.skD), skAi: copyBytes(s.skAi), skAr: copyBytes(s.skAr),
    skEi: copyBytes(s.skEi), skEr: copyBytes(s.skEr), skPi: copyBytes(s.skPi), skPr: copyBytes(s.skPr),
    initiator: s.initiator, nextRequestId: s.nextRequestId, nextPeerRequestId: s.nextPeerRequestId,
    transforms: { ...s.transforms },
  };
}

export function copySa(s: StoredSa): StoredSa {
  return { nic: s.nic, pair: copyPair(s.pair), state: s.state, ike: s.ike && copyIke(s.ike), updatedAt: s.updatedAt };
}

function copyMap<K, V>(m: Map<K, V>, copy: (v: V) => V): Map<K, V> {
  const out = new Map<K, V>();
  for (const [k, v] of m) out.set(k, copy(v));
  return out;
}

const flat = <T extends object>(r: T): T => ({ ...r });

/** A deep copy of `t` (Maps, arrays and rows new; every value a primitive or a new byte array). */
export function copyTables(t: MemoryTables): MemoryTables {
  return {
    nics: copyMap(t.nics, (n) => ({ ...n, psk: copyBytes(n.psk) })),
    sas: copyMap(t.sas, (g) => copyMap(g, copySa)),
    seqCheckpoints: copyMap(t.seqCheckpoints, (g) => copyMap(g, flat)),
    leases: copyMap(t.leases, flat),
    commandLog: copyMap(t.commandLog, (rows) => rows.map(flat)),
    commandHeads: copyMap(t.commandHeads, flat),
    syncEpochs: copyMap(t.syncEpochs, flat),
    stations: copyMap(t.stations, flat),
    members: new Map(t.members),
    alerts: copyMap(t.alerts, flat),
  };
}

/** Make `into` a deep copy of `from`, keeping `into`'s Map objects (so references to them stay live). */
export function replaceTables(into: MemoryTables, from: MemoryTables): void {
  const copy = copyTables(from);
  for (const name of Object.keys(copy) as (keyof MemoryTables)[]) {
    const target = into[name] as Map<unknown, unknown>;
    target.clear();
    for (const [k, v] of copy[name] as Map<unknown, unknown>) target.set(k, v);
  }
}
