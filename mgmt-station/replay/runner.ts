/**
 * `mgmt-station replay TABLE`: drives every row of a state-transition table on an isolated lab of real
 * processes on loopback (one emulated NIC per row, a private store), and reports expected vs observed.
 *
 * Per row: key the row's NIC (IKEv2 enrolment, unless the client state is `no-sa`), put the host into the
 * client state through the emulator's control API, put the station into its state, perform the action with
 * a fresh `mgmt-station` process (or a raw clear RMCP datagram), and observe the outcome.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { spawnReady } from '../../lib/spawn-ready.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { ControlClient } from '../../lib/control-client.js';
import { encodeRmcpAsf, decodeRmcpAsf } from '../../wire/asf.js';
import type { Outcome, TableRow } from './table.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const EMULATOR = join(ROOT, 'bin/nic-emulator.js');
const STATION = join(ROOT, 'bin/mgmt-station.js');
const LEASE_MS = 800;

export interface RowResult { row: TableRow; observed: Outcome | string; ok: boolean; detail: string; ms: number }

interface Lab { dir: string; emu: ChildProcess; control: ControlClient; controlAddr: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startLab(nics: number): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-replay-'));
  const root = process.getuid?.() === 0;
  const addressing = root ? ['--first-address', `127.${100 + (process.pid % 100)}.${1 + ((process.pid >> 7) % 200)}.1`] : ['--port-base', String(30000 + (process.pid % 900) * 30)];
  const { child: emu, ready } = await spawnReady<{ control: string }>(
    EMULATOR,
    ['start', '--json', '--nics', String(nics), '--control', '127.0.0.1:0', '--data-dir', join(dir, 'nics'), '--boot-delay', '60000', ...addressing],
    `replay lab emulator (${addressing.join(' ')})`,
  );
  writeFileSync(join(dir, 'psk.hex'), randomBytes(32).toString('hex'), { mode: 0o600 });
  return { dir, emu, control: ControlClient.parse(ready.control), controlAddr: ready.control };
}

function station(lab: Lab, store: string, args: string[]): { ok: boolean; json: any; error: string } {
  const r = spawnSync(process.execPath, [STATION, ...args, '--json', '--no-daemon', '--store', `sqlite:${join(lab.dir, store)}`, '--cluster-key', join(lab.dir, 'cluster.key'), '--emulator', lab.controlAddr, '--lease-ms', String(LEASE_MS), '--timeout', '2000'], { encoding: 'utf8', timeout: 30000 });
  let json: any = null;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    /* error output */
  }
  return { ok: r.status === 0, json, error: r.stderr.trim() };
}

/** Start a station daemon, send one command through it, then kill -9 it: a station cold boot follows. */
async function crashDaemon(lab: Lab, nic: string): Promise<void> {
  const { child: d } = await spawnReady(STATION, ['serve', '--json', '--store', `sqlite:${join(lab.dir, 'station.db')}`, '--cluster-key', join(lab.dir, 'cluster.key'), '--lease-ms', String(LEASE_MS), '--poll-interval', String(LEASE_MS / 2), '--control', '127.0.0.1:0'], 'replay station daemon');
  spawnSync(process.execPath, [STATION, 'ping', nic, '--json', '--store', `sqlite:${join(lab.dir, 'station.db')}`, '--cluster-key', join(lab.dir, 'cluster.key')], { timeout: 15000 });
  await new Promise<void>((r) => {
    d.once('exit', () => r());
    d.kill('SIGKILL');
  });
}

async function clearDatagram(address: string, port: number, type: 'power-up' | 'presence-ping'): Promise<Uint8Array[]> {
  const s = dgram.createSocket('udp4');
  const got: Uint8Array[] = [];
  s.on('message', (m) => got.push(new Uint8Array(m)));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const msg = type === 'power-up' ? encodeRmcpAsf(7, { type: 'power-up', tag: 7, bootOptions: null }) : encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 9 });
  s.send(msg, port, address);
  await sleep(300);
  s.close();
  return got;
}

async function runRow(lab: Lab, row: TableRow, index: number): Promise<RowResult> {
  const t0 = performance.now();
  const nic = `nic-${index + 1}`;
  const path = `/v1/nics/${nic}`;
  const status = () => lab.control.get<any>(path);
  const done = (observed: Outcome | string, detail: string): RowResult => ({ row, observed, ok: observed === row.expect, detail, ms: performance.now() - t0 });

  // 1. NIC configuration and keys (the host is up when the lab starts).
  if (row.clearManagement.length) await lab.control.post(`${path}/config`, { clearManagement: row.clearManagement });
  if (row.client !== 'no-sa') {
    const e = station(lab, 'station.db', ['enroll', nic, '--psk-file', join(lab.dir, 'psk.hex'), '--id', 'station-1']);
    if (!e.ok) return done('setup-failed', `enroll: ${e.error}`);
  }
  // 2. Station state.
  let id = 'station-1';
  let store = 'station.db';
  if (row.station === 'cold-boot') await crashDaemon(lab, nic);
  if (row.station === 'hung') {
    await sleep(LEASE_MS + 200); // the owner stopped renewing; its lease lapses
    id = 'station-2';
  }
  if (row.station === 'cold-boot-seed') store = 'seed-station.db'; // the seed's station lost its SAs
  // 3. Client (host) state.
  const ev: Record<string, string | null> = { up: null, 'no-sa': null, hung: 'hang', suspend: 'suspend', off: 'power-down', 'pre-boot': 'power-cycle' };
  if (ev[row.client]) await lab.control.post(`${path}/host`, { event: ev[row.client] });
  // 4. Action and observation.
  const st = await status();
  if (row.action === 'clear-power-up' || row.action === 'clear-ping') {
    const before = st.counters;
    const replies = await clearDatagram(st.address, st.ports.clear, row.action === 'clear-ping' ? 'presence-ping' : 'power-up');
    const after = (await status()).counters;
    if (row.action === 'clear-ping') {
      const pong = replies.map((r) => decodeRmcpAsf(r)).find((p) => p.asf?.type === 'presence-pong');
      return done(pong ? 'ok' : 'failed', pong ? 'pong (28 bytes)' : 'no pong');
    }
    if (after.refusedClear > before.refusedClear) return done('refused', 'refused and counted by the NIC');
    if (after.executed > before.executed) return done('ok', 'executed by the NIC');
    return done('failed', 'neither executed nor refused');
  }
  const verb = row.action === 'refresh' ? 'refresh' : row.action.replace(/^secure-/, '');
  const r = station(lab, store, [verb, nic, '--id', id]);
  if (!r.ok) {
    const code = /E_[A-Z_]+/.exec(r.error)?.[0] ?? '';
    if (code === 'E_NO_SA' || code === 'E_NOT_FOUND') return done('no-sa', r.error);
    return done('failed', r.error);
  }
  if (verb === 'state') {
    const s = r.json.response.systemState as number;
    return done(s === 0 ? 'S0' : s === 3 ? 'S3' : s === 5 ? 'S5' : `state ${s}`, `System State ${s} under SA ${r.json.generation}${id !== 'station-1' ? ` via ${id}` : ''}`);
  }
  if (verb === 'refresh') return done('ok', `SA generation ${r.json.generation} committed`);
  return done('ok', `acknowledged under SA ${r.json.generation}${id !== 'station-1' ? ` by ${id} (takeover)` : ''}; host ${(await status()).host}`);
}

export async function replayTable(rows: TableRow[], onRow?: (r: RowResult, i: number) => void): Promise<RowResult[]> {
  const lab = await startLab(rows.length);
  const out: RowResult[] = [];
  try {
    for (let i = 0; i < rows.length; i++) {
      let r: RowResult;
      try {
        r = await runRow(lab, rows[i], i);
      } catch (e) {
        r = { row: rows[i], observed: 'error', ok: false, detail: (e as Error).message, ms: 0 };
      }
      out.push(r);
      onRow?.(r, i);
    }
  } finally {
    lab.emu.kill('SIGKILL');
    rmSync(lab.dir, { recursive: true, force: true });
  }
  return out;
}
