/**
 * The store's schema as version 1 released it (mgmt-station/store/schema.ts before sync epochs), frozen here so
 * the upgrade test can build a version-1 store by hand, as a station of that release left it.
 * Do not edit: it is history.
 */
import type { SqlStoreKind } from '../../../mgmt-station/store/store.js';

const TABLES_V1 = `
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

/** The version-1 CREATE statements for `kind`, as schema.ts wrote them then. */
export function v1Statements(kind: SqlStoreKind): string[] {
  const types = kind === 'sqlite' ? { blob: 'BLOB', big: 'INTEGER' } : { blob: 'BYTEA', big: 'BIGINT' };
  return TABLES_V1.split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => s.replace(/\{(blob|big)\}/g, (_, k: 'blob' | 'big') => types[k]));
}

/** The column list of a version-1 command_log row. */
export const V1_LOG_COLUMNS = 'nic, idx, kind, ref, time, station, epoch, command, rmcp_seq, asf_tag, outcome, prev_hash, hash, mac';
