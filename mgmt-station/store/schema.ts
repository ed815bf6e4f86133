/**
 * The store's tables, the same for both backends apart from column type names. Created idempotently
 * (CREATE ... IF NOT EXISTS) in one transaction at open; `store_meta` records the schema version and the
 * id of the cluster key the store's keys are wrapped under, so a station with another key is refused at
 * open (E_KEYFILE) instead of failing on the first unwrap.
 *
 * 64-bit sequence numbers are TEXT (decimal): SQLite's INTEGER is signed 64-bit and cannot hold every
 * u64; the monotonic max is taken in the transaction, under the NIC's lease row lock.
 *
 * Versions: 1 the first release; 2 adds command_log.sync_epoch (NULL for entries without one),
 * seq_checkpoints.mac (row-mac.ts) and the sync_epochs table. The alerts table (docs/ALERTS.md) came later
 * without a version change: CREATE TABLE IF NOT EXISTS adds it to any version-2 store at open, and a station
 * that predates it never reads it. A version-1 store is upgraded in place by the
 * first version-2 station that opens it, inside the same transaction as the rest of ensureSchema (so two
 * stations opening it at once upgrade it once: SQLite's write lock, PostgreSQL's setup advisory lock).
 * Upgrade every station of a cluster together: a version-1 station still running on an upgraded store
 * writes checkpoints without a valid MAC, which the version-2 stations then refuse (E_STORE, fail closed).
 */
import type { SqlStoreKind } from './store.js';
import { sql, type SqlOp, type Tx } from './sql-driver.js';
import { UsageError } from '../../common/errors.js';
import type { RowMacs } from './row-mac.js';

export const SCHEMA_VERSION = 2;

const TABLES = `
CREATE TABLE IF NOT EXISTS store_meta (
  k TEXT PRIMARY KEY,
  v TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nics (
  id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  secure_port INTEGER NOT NULL,
  clear_port INTEGER NOT NULL,
  ike_port INTEGER NOT NULL,
  psk {blob} NOT NULL,
  enrolled_at {big} NOT NULL,
  meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sas (
  nic TEXT NOT NULL,
  generation INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'previous', 'retired')),
  transform TEXT NOT NULL,
  esn INTEGER NOT NULL,
  policy TEXT NOT NULL,
  origin TEXT NOT NULL,
  to_nic_spi {big} NOT NULL,
  to_nic_ah_spi {big} NOT NULL,
  to_nic_enc_key {blob} NOT NULL,
  to_nic_ah_key {blob} NOT NULL,
  from_nic_spi {big} NOT NULL,
  from_nic_ah_spi {big} NOT NULL,
  from_nic_enc_key {blob} NOT NULL,
  from_nic_ah_key {blob} NOT NULL,
  ike {blob},
  updated_at {big} NOT NULL,
  PRIMARY KEY (nic, generation)
);
CREATE UNIQUE INDEX IF NOT EXISTS sas_inbound_spi ON sas (from_nic_spi) WHERE state <> 'retired';
CREATE UNIQUE INDEX IF NOT EXISTS sas_one_active ON sas (nic) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS seq_checkpoints (
  nic TEXT NOT NULL,
  generation INTEGER NOT NULL,
  out_reserved TEXT NOT NULL,
  in_highest TEXT NOT NULL,
  updated_at {big} NOT NULL,
  mac TEXT NOT NULL,
  PRIMARY KEY (nic, generation)
);
CREATE TABLE IF NOT EXISTS sync_epochs (
  nic TEXT PRIMARY KEY,
  max_epoch {big} NOT NULL,
  updated_at {big} NOT NULL,
  mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
  nic TEXT PRIMARY KEY,
  owner TEXT,
  epoch {big} NOT NULL,
  expires_at {big} NOT NULL
);
CREATE TABLE IF NOT EXISTS command_log (
  nic TEXT NOT NULL,
  idx {big} NOT NULL,
  kind TEXT NOT NULL,
  ref {big},
  time {big} NOT NULL,
  station TEXT NOT NULL,
  epoch {big} NOT NULL,
  command TEXT NOT NULL,
  rmcp_seq INTEGER NOT NULL,
  asf_tag INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  mac TEXT NOT NULL,
  sync_epoch {big},
  PRIMARY KEY (nic, idx)
);
CREATE TABLE IF NOT EXISTS command_heads (
  nic TEXT PRIMARY KEY,
  idx {big} NOT NULL,
  hash TEXT NOT NULL,
  mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
  id {serial},
  nic TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  received_at {big} NOT NULL,
  station TEXT NOT NULL,
  event TEXT NOT NULL,
  severity INTEGER NOT NULL,
  specific_trap {big} NOT NULL,
  pet_sequence INTEGER NOT NULL,
  pet_time {big},
  pet TEXT NOT NULL,
  via TEXT NOT NULL,
  UNIQUE (nic, alert_id)
);
CREATE TABLE IF NOT EXISTS stations (
  id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  last_seen {big} NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_members (
  station TEXT PRIMARY KEY,
  expires_at {big} NOT NULL
);
`;

function typesOf(kind: SqlStoreKind): { blob: string; big: string; serial: string } {
  return kind === 'sqlite'
    ? { blob: 'BLOB', big: 'INTEGER', serial: 'INTEGER PRIMARY KEY AUTOINCREMENT' }
    : { blob: 'BYTEA', big: 'BIGINT', serial: 'BIGSERIAL PRIMARY KEY' };
}

export function schemaStatements(kind: SqlStoreKind): SqlOp[] {
  const types = typesOf(kind);
  return TABLES.split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => sql(s.replace(/\{(blob|big|serial)\}/g, (_, t: 'blob' | 'big' | 'serial') => types[t])));
}

/** The cluster key as the schema needs it: its id (store_meta) and the row MACs (the version-2 upgrade). */
export interface SchemaKey {
  id: string;
  macs: RowMacs;
}

/** Create the tables, check the cluster key id, then the version, upgrading a version-1 store (run inside a write transaction). */
export function* ensureSchema(kind: SqlStoreKind, url: string, key: SchemaKey, prelude: SqlOp[] = []): Tx<void> {
  for (const op of prelude) yield op;
  for (const op of schemaStatements(kind)) yield op;
  const rows = yield sql('SELECT k, v FROM store_meta');
  const meta = new Map(rows.map((r) => [String(r.k), String(r.v)]));
  // The key first: a station with another cluster's key must not seal an upgraded store's rows under it.
  const storedKey = meta.get('cluster_key_id');
  if (storedKey === undefined) {
    yield sql('INSERT INTO store_meta (k, v) VALUES (?, ?)', 'cluster_key_id', key.id);
  } else if (storedKey !== key.id) {
    throw new UsageError(
      'E_KEYFILE',
      `store ${url} holds keys wrapped under cluster key ${storedKey}, but this station has key ${key.id}; use the cluster's key file`,
    );
  }
  const version = meta.get('schema_version');
  if (version === undefined) {
    yield sql('INSERT INTO store_meta (k, v) VALUES (?, ?)', 'schema_version', String(SCHEMA_VERSION));
  } else if (Number(version) > SCHEMA_VERSION) {
    throw new UsageError('E_STORE', `store ${url} has schema version ${version}, newer than this station's ${SCHEMA_VERSION}; upgrade the station`);
  } else if (Number(version) === 1) {
    yield* upgradeFrom1(kind, key.macs);
    yield sql('UPDATE store_meta SET v = ? WHERE k = ?', String(SCHEMA_VERSION), 'schema_version');
  } else if (Number(version) !== SCHEMA_VERSION) {
    throw new UsageError('E_STORE', `store ${url} records schema version ${JSON.stringify(version)}, which no station writes; restore the store from a backup`);
  }
}

/**
 * Version 1 -> 2. Old log entries keep a NULL sync epoch, so they hash exactly as they were written
 * (command-log.ts). Existing checkpoints are sealed as they stand: the upgrade trusts the rows a
 * version-1 station left, as that station did. (SQLite cannot add a NOT NULL column without a default;
 * the '' placeholder never verifies and is replaced before the transaction commits.)
 */
function* upgradeFrom1(kind: SqlStoreKind, macs: RowMacs): Tx<void> {
  yield sql(`ALTER TABLE command_log ADD COLUMN sync_epoch ${typesOf(kind).big}`);
  yield sql(`ALTER TABLE seq_checkpoints ADD COLUMN mac TEXT NOT NULL DEFAULT ''`);
  const seq = yield sql('SELECT nic, generation, out_reserved, in_highest FROM seq_checkpoints');
  for (const r of seq) {
    const [nic, generation] = [String(r.nic), Number(r.generation)];
    yield sql(
      'UPDATE seq_checkpoints SET mac = ? WHERE nic = ? AND generation = ?',
      macs.seqMac(nic, generation, String(r.out_reserved), String(r.in_highest)), nic, generation,
    );
  }
}
