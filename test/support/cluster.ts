/**
 * Helpers for the station-cluster end-to-end tests (issue 5): free UDP ports for `serve --listen`, cluster
 * policy files, the NIC's execution log matched to the station's command log, and direct SQL on the store
 * (SQLite file or PostgreSQL schema) to read leases and to tamper with rows as an attacker with store access.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { daemonTokens, type Lab, type RunResult } from './lab.js';

/** A UDP port nobody holds right now on `address` (bind-tested; ports below 30000 avoid the labs' port-per-NIC ranges). */
export async function freeUdpPort(address = '127.0.0.1', avoid: number[] = []): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.once('error', reject);
      s.bind(0, address, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (!avoid.includes(port)) return port;
  }
}

/** Write `text` as a policy file in the lab directory and apply it with `nic-emulator policy NIC FILE`. */
export async function applyPolicy(lab: Lab, nic: string, text: string, name = `${nic}-policy.ini`): Promise<RunResult & { file: string }> {
  const file = join(lab.dir, name);
  writeFileSync(file, text);
  return { ...(await lab.emulatorCli(['policy', nic, file])), file };
}

/** The seed-syntax policy the cluster tests use: heartbeats every `responseS`, listed order unless `randomize`. */
export function clusterPolicy(stations: string[], o: { mode?: 'NONE' | 'INSTANT' | 'DEFERRED'; responseS?: number; deferS?: number; randomize?: boolean } = {}): string {
  return [
    '[GENERAL]',
    `Heartbeat = ${o.mode ?? 'INSTANT'}`,
    `HeartbeatResponseTime = ${o.responseS ?? 1}`,
    `HeartbeatDeferTime = ${o.deferS ?? 10}`,
    `Randomize = ${o.randomize ? 'yes' : 'no'}`,
    '',
    '[CLUSTER]',
    `Cluster1 = ${stations.join(' ')}`,
    '',
  ].join('\n');
}

export interface ExecEntry { at: string; command: string; via: 'clear' | 'secure'; rmcpSeq: number; tag: number; generation: number; from: string; hostBefore: string; hostAfter: string }

export function execLog(lab: Lab, nic: string): Promise<ExecEntry[]> {
  return lab.control.get<ExecEntry[]>(`/v1/nics/${encodeURIComponent(nic)}/exec-log`);
}

/**
 * A command's identity on the wire from its command-log index (mgmt-station/core/session.ts): RMCP sequence
 * (index - 1) mod 255 (0xFF is reserved for "no ACK") and ASF tag floor((index - 1) / 255) mod 256.
 */
export function wireIdentity(index: number): { rmcpSeq: number; tag: number } {
  return { rmcpSeq: (index - 1) % 255, tag: Math.floor((index - 1) / 255) % 256 };
}

/** The command-log index an executed (rmcpSeq, tag) belongs to (unique below 255 * 256 log entries). */
export function logIndexOf(e: { rmcpSeq: number; tag: number }): number {
  return e.tag * 255 + e.rmcpSeq + 1;
}

/** Every non-fault drop counter of the NIC's secure path (replay, icv, spi, ...). */
export function nicDrops(status: any): Record<string, number> {
  const { link_down: _l, nic_unpowered: _p, ...rest } = (status.counters?.dropped ?? {}) as Record<string, number>;
  return Object.fromEntries(Object.entries(rest).filter(([, v]) => v > 0));
}

// ------------------------------------------------------------------------------------------ the store

/**
 * Run one SQL statement directly on a store: `sqlite:FILE` or the postgres:// URL (its `?schema=` becomes the
 * search path). Placeholders are `?`; they become $1, $2, ... for PostgreSQL.
 */
export async function storeSql(store: string, text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  if (store.startsWith('sqlite:')) {
    const db = new Database(store.slice('sqlite:'.length), { fileMustExist: true, timeout: 5000 });
    try {
      const st = db.prepare(text);
      return st.reader ? (st.all(...params) as Record<string, unknown>[]) : (st.run(...params), []);
    } finally {
      db.close();
    }
  }
  const url = new URL(store);
  const schema = url.searchParams.get('schema') ?? 'lifeline';
  url.searchParams.delete('schema');
  const c = new pg.Client({ connectionString: url.toString(), options: `-c search_path=${schema}`, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    let n = 0;
    return (await c.query(text.replace(/\?/g, () => `$${++n}`), params)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

export interface LeaseRow { owner: string | null; epoch: number; expiresAt: number }

export async function readLease(store: string, nic: string): Promise<LeaseRow | null> {
  const rows = await storeSql(store, 'SELECT owner, epoch, expires_at FROM leases WHERE nic = ?', [nic]);
  if (rows.length === 0) return null;
  return { owner: rows[0].owner as string | null, epoch: Number(rows[0].epoch), expiresAt: Number(rows[0].expires_at) };
}

/**
 * Log indexes of the NIC's commands still 'sent' (no outcome entry yet), read straight from the store's
 * append-only log (mgmt-station/store/command-log.ts: an outcome is a later row whose `ref` is the command).
 */
export async function unfinishedCommands(store: string, nic: string): Promise<number[]> {
  const rows = await storeSql(
    store,
    `SELECT c.idx AS idx FROM command_log c WHERE c.nic = ? AND c.kind = 'command' AND c.outcome = 'sent'
       AND NOT EXISTS (SELECT 1 FROM command_log o WHERE o.nic = c.nic AND o.kind = 'outcome' AND o.ref = c.idx) ORDER BY c.idx`,
    [nic],
  );
  return rows.map((r) => Number(r.idx));
}

// ------------------------------------------------------------------------------------------ the daemons

/**
 * What became of one POST to a station daemon, told apart the way an exactly-once check needs it:
 * `refused` = the connection was refused (the daemon is dead: nothing was logged or sent), `error` = the daemon
 * answered with a coded error, `lost` = the connection broke mid-request (the command may or may not have run).
 */
export type VerbOutcome =
  | { kind: 'ok'; body: any }
  | { kind: 'error'; code: string; message: string }
  | { kind: 'refused' }
  | { kind: 'lost'; message: string };

export function postVerb(control: string, nic: string, verb: string, timeoutMs = 10000): Promise<VerbOutcome> {
  const [host, port] = control.split(':');
  return new Promise((resolve) => {
    const token = daemonTokens.get(control);
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const req = http.request({ host, port: Number(port), method: 'POST', path: `/v1/nics/${encodeURIComponent(nic)}/${verb}`, agent: false, timeout: timeoutMs, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('error', (e) => resolve({ kind: 'lost', message: e.message }));
      res.on('end', () => {
        try {
          const j = JSON.parse(text);
          resolve(j.ok ? { kind: 'ok', body: j } : { kind: 'error', code: j.error?.code ?? 'E_INTERNAL', message: j.error?.message ?? text });
        } catch {
          resolve({ kind: 'lost', message: `non-JSON answer: ${text.slice(0, 200)}` });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? { kind: 'refused' } : { kind: 'lost', message: e.message }));
    req.end();
  });
}
