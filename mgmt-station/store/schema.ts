/**
 * The store's tables, the same for both backends apart from column type names. Created idempotently
 * (CREATE ... IF NOT EXISTS) in one transaction at open; `store_meta` records the schema version and the
 * id of the cluster key the store's keys are wrapped under, so a station with another key is refused at
 * open (E_KEYFILE) instead of failing on the first unwrap.
 *
 * 64-bit sequence numbers are TEXT (decimal): SQLite's INTEGER is signed 64-bit and cannot hold every
 * u64; the monotonic max is taken in the transaction, under the NIC's lease row lock.
 */
import type { StoreKind } from './store.js';
import { sql, type SqlOp, type Tx } from './sql-driver.js';
import { UsageError } from '../../common/errors.js';

export const SCHEMA_VERSION = 1;

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
  PRIMARY KEY (nic, generation)
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
  PRIMARY KEY (nic, idx)
);
CREATE TABLE IF NOT EXISTS command_heads (
  nic TEXT PRIMARY KEY,
  idx {big} NOT NULL,
  hash TEXT NOT NULL,
  mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stations (
  id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  last_seen {big} NOT NULL
);
`;

export function schemaStatements(kind: StoreKind): SqlOp[] {
  const types = kind === 'sqlite' ? { blob: 'BLOB', big: 'INTEGER' } : { blob: 'BYTEA', big: 'BIGINT' };
  return TABLES.split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => sql(s.replace(/\{(blob|big)\}/g, (_, t: 'blob' | 'big') => types[t])));
}

/** Create the tables and check version and cluster key id (run inside a write transaction). */
export function* ensureSchema(kind: StoreKind, url: string, keyId: string, prelude: SqlOp[] = []): Tx<void> {
  for (const op of prelude) yield op;
  for (const op of schemaStatements(kind)) yield op;
  const rows = yield sql('SELECT k, v FROM store_meta');
  const meta = new Map(rows.map((r) => [String(r.k), String(r.v)]));
  const version = meta.get('schema_version');
  if (version === undefined) {
    yield sql('INSERT INTO store_meta (k, v) VALUES (?, ?)', 'schema_version', String(SCHEMA_VERSION));
  } else if (Number(version) > SCHEMA_VERSION) {
    throw new UsageError('E_STORE', `store ${url} has schema version ${version}, newer than this station's ${SCHEMA_VERSION}; upgrade the station`);
  }
  const storedKey = meta.get('cluster_key_id');
  if (storedKey === undefined) {
    yield sql('INSERT INTO store_meta (k, v) VALUES (?, ?)', 'cluster_key_id', keyId);
  } else if (storedKey !== keyId) {
    throw new UsageError(
      'E_KEYFILE',
      `store ${url} holds keys wrapped under cluster key ${storedKey}, but this station has key ${keyId}; use the cluster's key file`,
    );
  }
}
