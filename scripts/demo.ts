/**
 * `npm run demo`: a scripted tour of Lifeline on real processes and sockets, in a temporary directory.
 * It starts an emulator with 4 NICs, enrols one NIC over IKEv2 and keys another by hand, shows that secure
 * commands work in every host state while clear ones are refused, refreshes an SA with the two-phase commit,
 * replays a stale packet, restarts the emulator from its EEPROM files, and ends with a summary. Exit 0 = every
 * step behaved as described.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { spawnReady } from '../lib/spawn-ready.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { encodeRmcpAsf } from '../wire/asf.js';

const ROOT = resolve(import.meta.dirname, '../..');
const EMU = join(ROOT, 'bin/nic-emulator.js');
const STA = join(ROOT, 'bin/mgmt-station.js');
const dir = mkdtempSync(join(tmpdir(), 'lifeline-demo-'));
const isRoot = process.getuid?.() === 0;
const addressing = isRoot ? ['--first-address', '127.0.200.1'] : ['--port-base', '26230'];
const results: { step: string; ok: boolean; detail: string }[] = [];
let emu: ChildProcess | null = null;
let control = '';

function say(s: string): void {
  process.stdout.write(s + '\n');
}

function station(...args: string[]): any {
  const r = spawnSync(process.execPath, [STA, ...args, '--json', '--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key'), '--emulator', control], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`mgmt-station ${args.join(' ')}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

function emulatorCli(...args: string[]): any {
  const r = spawnSync(process.execPath, [EMU, ...args, '--json', '--control', control], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`nic-emulator ${args.join(' ')}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

async function startEmulator(): Promise<{ first: string; control: string }> {
  const r = await spawnReady<{ first: string; control: string }>(EMU, ['start', '--nics', '4', '--json', '--control', '127.0.0.1:0', '--data-dir', join(dir, 'nics'), '--boot-delay', '500', ...addressing], 'nic-emulator', { timeoutMs: 15000 });
  emu = r.child;
  return r.ready;
}

async function stopEmulator(): Promise<void> {
  const e = emu;
  emu = null;
  if (!e || e.exitCode !== null) return;
  await new Promise<void>((r) => {
    e.once('exit', () => r());
    e.kill('SIGKILL'); // like a power cut: the EEPROM files are all that survives
  });
}

async function step(name: string, f: () => Promise<string> | string): Promise<void> {
  try {
    const detail = await f();
    results.push({ step: name, ok: true, detail });
    say(`  ok    ${name}: ${detail}`);
  } catch (e) {
    results.push({ step: name, ok: false, detail: (e as Error).message });
    say(`  FAIL  ${name}: ${(e as Error).message}`);
  }
}

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  say(`Lifeline demo (work dir ${dir})`);
  const ready = await startEmulator();
  control = ready.control;
  say(`emulator: 4 NICs from ${ready.first}, control ${control}\n`);
  const nic1 = emulatorCli('status', 'nic-1');

  await step('enroll nic-1 over IKEv2 (PSK) with the two-phase commit', () => {
    const psk = join(dir, 'psk.hex');
    writeFileSync(psk, randomBytes(32).toString('hex'), { mode: 0o600 });
    const r = station('enroll', 'nic-1', '--psk-file', psk);
    return `SA generation ${r.generation} committed via ${r.exchange} in ${r.ms.toFixed(1)} ms`;
  });
  await step('key nic-2 by hand (RFC 4301 manual SA, policy esp+ah)', () => `generation ${station('sa', 'manual', 'nic-2', '--policy', 'esp+ah').generation}`);
  await step('secure Presence Ping nic-1', () => `pong in ${station('ping', 'nic-1').rttMs} ms`);
  await step('clear Reset on UDP 623 is refused', async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.send(encodeRmcpAsf(1, { type: 'reset', tag: 1, bootOptions: null }), nic1.ports.clear, nic1.address, () => r()));
    await sleep(200);
    s.close();
    const st = emulatorCli('status', 'nic-1');
    expect(st.counters.refusedClear === 1 && st.host === 'up', `refusedClear=${st.counters.refusedClear} host=${st.host}`);
    return 'counted as refusedClear, host still up';
  });
  await step('hang nic-1: System State still answers (S0) over ESP', () => {
    emulatorCli('host', 'nic-1', 'hang');
    const r = station('state', 'nic-1');
    expect(r.response.systemState === 0, `state ${r.response.systemState}`);
    return 'S0 while the OS is hung';
  });
  await step('secure power-cycle of the hung host', async () => {
    const r = station('power-cycle', 'nic-1');
    const h = emulatorCli('status', 'nic-1').host;
    expect(h === 'pre-boot', `host ${h}`);
    await sleep(800);
    return `acknowledged (log entry ${r.command.index}), host pre-boot -> ${emulatorCli('status', 'nic-1').host}`;
  });
  await step('refresh nic-1 (CREATE_CHILD_SA or new IKE SA + SA_READY/SA_ACK/SA_CONFIRM)', () => {
    const r = station('refresh', 'nic-1');
    return `generation ${r.generation} via ${r.exchange}`;
  });
  await step('suspend nic-2 and power it down securely (ESP+AH)', () => {
    emulatorCli('host', 'nic-2', 'suspend');
    const s3 = station('state', 'nic-2').response.systemState;
    station('power-down', 'nic-2');
    const s5 = station('state', 'nic-2').response.systemState;
    expect(s3 === 3 && s5 === 5, `states ${s3} -> ${s5}`);
    return 'S3 -> S5';
  });
  await step('restart the emulator with kill -9: SAs come back from the EEPROM files', async () => {
    const before = emulatorCli('status', 'nic-1').sa.active.generation;
    await stopEmulator();
    const r = await startEmulator();
    control = r.control;
    const after = emulatorCli('status', 'nic-1').sa.active.generation;
    expect(before === after, `generation ${before} -> ${after}`);
    const p = station('ping', 'nic-1');
    return `nic-1 keeps SA generation ${after}; secure ping answered after ${p.attempts} attempt(s)`;
  });
  await step('status counters', () => {
    const all = emulatorCli('status') as any[];
    return all.map((n) => `${n.id}:${n.host}/sa${n.sa?.active?.generation ?? '-'}`).join(' ');
  });

  await stopEmulator();
  const failed = results.filter((r) => !r.ok).length;
  say(`\nSummary: ${results.length - failed}/${results.length} steps ok${failed ? `, ${failed} FAILED` : ''}`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}

process.on('SIGINT', () => {
  emu?.kill('SIGKILL');
  process.exit(130);
});

main().catch(async (e) => {
  say(`demo: ${(e as Error).message}`);
  await stopEmulator();
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
