/**
 * Station failover figures (issue 5): two station daemons (A, B) on one SQLite store, sharing first-come (a primary
 * and its backup; balanced sharing: station-cluster.ts), lease 500 ms, polling
 * every 150 ms; one emulated NIC, enrolled over IKEv2, with an INSTANT heartbeat policy listing both stations.
 * Each trial: a command through the current owner, `kill -9` of the owner, then commands through the other
 * station until one is acknowledged (time from the kill = "first command through the backup"), and the time
 * until the NIC's status names the backup (owner notice / heartbeat switch). The killed station is restarted
 * as the next backup. Afterwards every acknowledged command must appear exactly once in the NIC's execution
 * log, and no command may run twice (lost / duplicated = 0).
 */
import http from 'node:http';
import dgram from 'node:dgram';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { spawnChild, startEmulator, stopChild, tempDir } from './processes.js';
import { figure, percentile, type Figure } from './stats.js';

const STATION_CLI = resolve(import.meta.dirname, '../mgmt-station/cli.js');
const LEASE_MS = 500;

export interface FailoverResult {
  trials: number;
  firstCommandAfterKill: { p50: Figure; max: Figure };
  nicSwitch: { p50: Figure; max: Figure };
  commands: { acked: number; lost: number; duplicated: number };
}

/** A station daemon's control API: its address and the credential from its announce file (mgmt-station/daemon.ts). */
interface Daemon { control: string; token: string }

function post(d: Daemon, path: string): Promise<any> {
  const [host, port] = d.control.split(':');
  return new Promise((res) => {
    const req = http.request({ host, port: Number(port), method: 'POST', path, agent: false, timeout: 5000, headers: { authorization: `Bearer ${d.token}` } }, (r) => {
      let t = '';
      r.setEncoding('utf8').on('data', (c: string) => (t += c)).on('end', () => {
        try {
          res(JSON.parse(t));
        } catch {
          res({ ok: false });
        }
      });
    });
    req.on('error', () => res({ ok: false }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function get(control: string, path: string): Promise<any> {
  const [host, port] = control.split(':');
  return new Promise((res, rej) => {
    http.get({ host, port: Number(port), path, agent: false }, (r) => {
      let t = '';
      r.setEncoding('utf8').on('data', (c: string) => (t += c)).on('end', () => res(JSON.parse(t)));
    }).on('error', rej);
  });
}

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function startStation(dir: string, id: string, port: number, emulator: string): Promise<{ child: ChildProcess } & Daemon> {
  const child = spawnChild(process.execPath, [STATION_CLI, 'serve', '--json', '--id', id, '--listen', `127.0.0.1:${port}`, '--lease-ms', String(LEASE_MS), '--poll-interval', '150', '--sharing', 'first-come', '--control', '127.0.0.1:0', '--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key'), '--emulator', emulator]);
  return new Promise((res, rej) => {
    let out = '';
    const t = setTimeout(() => rej(new Error(`station ${id} not ready`)), 15000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(t);
        const ready = JSON.parse(line) as { control: string; announce: string };
        res({ child, control: ready.control, token: (JSON.parse(readFileSync(ready.announce, 'utf8')) as { token: string }).token });
      }
    });
  });
}

export async function measureFailover(trials: number, log: (s: string) => void): Promise<FailoverResult> {
  const dir = tempDir('failover');
  const root = process.getuid?.() === 0;
  const emu = await startEmulator(['--nics', '1', '--data-dir', join(dir, 'nics'), '--boot-delay', '300', ...(root ? ['--first-address', `127.${60 + (process.pid % 100)}.77.1`] : ['--port-base', String(41000 + (process.pid % 500) * 3)])], 15000);
  const ctl = emu.ready.control;
  try {
    const ports = { A: await freePort(), B: await freePort() };
    writeFileSync(join(dir, 'psk.hex'), randomBytes(32).toString('hex'));
    writeFileSync(join(dir, 'policy.ini'), `[GENERAL]\nHeartbeat = INSTANT\nHeartbeatResponseTime = 1\nRandomize = no\n[CLUSTER]\nCluster1 = 127.0.0.1:${ports.A} 127.0.0.1:${ports.B}\n`);
    const cli = (args: string[]) => spawnSync(process.execPath, [STATION_CLI, ...args, '--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key'), '--emulator', ctl, '--lease-ms', String(LEASE_MS)], { encoding: 'utf8', timeout: 20000 });
    spawnSync(process.execPath, [resolve(import.meta.dirname, '../nic-emulator/cli.js'), 'policy', 'nic-1', join(dir, 'policy.ini'), '--control', ctl], { timeout: 10000 });
    const e = cli(['enroll', 'nic-1', '--psk-file', join(dir, 'psk.hex'), '--id', 'A']);
    if (e.status !== 0) throw new Error(`enroll failed: ${e.stderr}`);
    const st: Record<'A' | 'B', { child: ChildProcess } & Daemon> = { A: await startStation(dir, 'A', ports.A, ctl), B: await startStation(dir, 'B', ports.B, ctl) };
    let owner: 'A' | 'B' = 'A';
    const acked = new Set<number>();
    const verbs = ['power-cycle', 'reset', 'power-up'];
    const firstAfterKill: number[] = [];
    const nicSwitch: number[] = [];
    const ownerOf = async () => (await get(ctl, '/v1/nics/nic-1')).owner?.station as string | undefined;
    // Make sure A serves first.
    for (let i = 0; i < 50 && !(await post(st.A, '/v1/nics/nic-1/ping')).ok; i++) await new Promise((r) => setTimeout(r, 100));
    for (let t = 0; t < trials; t++) {
      const r = await post(st[owner], `/v1/nics/nic-1/${verbs[t % 3]}`);
      if (r.ok) acked.add(r.command.index);
      const dead = owner;
      const backup: 'A' | 'B' = owner === 'A' ? 'B' : 'A';
      const killedAt = performance.now();
      st[dead].child.kill('SIGKILL');
      let switchedAt: number | null = null;
      let ackedAt: number | null = null;
      for (let i = 0; performance.now() - killedAt < 10000 && (ackedAt === null || switchedAt === null); i++) {
        if (ackedAt === null) {
          const x = await post(st[backup], `/v1/nics/nic-1/${verbs[(t + 1) % 3]}`);
          if (x.ok) {
            acked.add(x.command.index);
            ackedAt = performance.now();
          }
        }
        if (switchedAt === null && (await ownerOf()) === `127.0.0.1:${ports[backup]}`) switchedAt = performance.now();
        if (ackedAt === null || switchedAt === null) await new Promise((r2) => setTimeout(r2, 10));
      }
      if (ackedAt === null || switchedAt === null) throw new Error(`trial ${t}: backup ${backup} did not take over within 10 s`);
      firstAfterKill.push(ackedAt - killedAt);
      nicSwitch.push(switchedAt - killedAt);
      await stopChild(st[dead].child, 100);
      st[dead] = await startStation(dir, dead, ports[dead], ctl);
      owner = backup;
      if (t % 5 === 4) log(`  failover trial ${t + 1}/${trials}: first command ${Math.round(ackedAt - killedAt)} ms, NIC switched ${Math.round(switchedAt - killedAt)} ms after the kill`);
    }
    // Exactly once: every acknowledged command executed once; nothing executed twice.
    const exec = (await get(ctl, '/v1/nics/nic-1/exec-log')) as { rmcpSeq: number; tag: number }[];
    const seen = new Map<string, number>();
    for (const x of exec) seen.set(`${x.rmcpSeq}:${x.tag}`, (seen.get(`${x.rmcpSeq}:${x.tag}`) ?? 0) + 1);
    const key = (index: number) => `${(index - 1) % 255}:${Math.floor((index - 1) / 255) % 256}`;
    const lost = [...acked].filter((i) => !seen.has(key(i))).length;
    const duplicated = [...seen.values()].filter((n) => n > 1).length;
    for (const s of Object.values(st)) await stopChild(s.child, 500);
    const wl = `${trials} trials: 2 station daemons on one SQLite store, lease ${LEASE_MS} ms, poll 150 ms; kill -9 of the owner`;
    return {
      trials,
      firstCommandAfterKill: { p50: figure(percentile(firstAfterKill, 50), 'ms', `${wl}; until a command through the backup is acknowledged`), max: figure(Math.max(...firstAfterKill), 'ms', wl) },
      nicSwitch: { p50: figure(percentile(nicSwitch, 50), 'ms', `${wl}; until the NIC's status names the backup (owner notice, heartbeats INSTANT 1 s)`), max: figure(Math.max(...nicSwitch), 'ms', wl) },
      commands: { acked: acked.size, lost, duplicated },
    };
  } finally {
    await stopChild(emu.child, 1000);
  }
}
