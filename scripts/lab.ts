/**
 * `npm start`: a lab on this machine with the embedded default — 4 emulated NICs, one station, SQLite —
 * that stays up until Ctrl-C. Everything lives under ./var (the CLIs' defaults), so the commands printed
 * at the end work as they are.
 *
 * As root, NICs get one loopback address each (127.0.1.1 ...) with the standard ports, so `rmcpping
 * 127.0.1.1` works. Otherwise they share 127.0.0.1 with a port per NIC (see README "Running without root").
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const EMULATOR = join(ROOT, 'bin/nic-emulator.js');
const STATION = join(ROOT, 'bin/mgmt-station.js');
const NICS = Number(process.env.LIFELINE_LAB_NICS ?? 4);
const isRoot = process.getuid?.() === 0;

function station(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(process.execPath, [STATION, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20000 });
  return { ok: r.status === 0, out: (r.stdout + r.stderr).trim() };
}

async function main(): Promise<void> {
  const addressing = isRoot ? ['--first-address', '127.0.1.1'] : ['--port-base', '16230'];
  const emu: ChildProcess = spawn(process.execPath, [EMULATOR, 'start', '--nics', String(NICS), '--data-dir', 'var/nics', '--json', ...addressing], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<{ first: string; last: string; control: string; running: number }>((res, rej) => {
    let buf = '';
    emu.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) res(JSON.parse(line));
    });
    emu.once('exit', (code) => rej(new Error(`nic-emulator exited with ${code}`)));
  });
  // Key every NIC that the station does not hold an SA for yet (a restarted lab keeps its SAs).
  const listed = station(['list', '--json']);
  const known: { id: string; sas: { state: string }[] }[] = listed.ok ? JSON.parse(listed.out.slice(listed.out.indexOf('['))) : [];
  for (let i = 1; i <= NICS; i++) {
    const id = `nic-${i}`;
    if (known.find((n) => n.id === id && n.sas.some((s) => s.state === 'active'))) continue;
    const r = station(['sa', 'manual', id]);
    if (!r.ok) process.stderr.write(`lab: keying ${id} failed: ${r.out}\n`);
  }
  const ping = station(['ping', 'nic-1']);
  process.stdout.write(`
Lifeline lab is up: ${ready.running} NICs (${ready.first} .. ${ready.last}), control API http://${ready.control}
Station store sqlite:var/station.db, cluster key var/cluster.key.   ${ping.ok ? 'Secure ping nic-1: ok' : 'Secure ping nic-1 FAILED: ' + ping.out}

Try, in another terminal:
  ./bin/mgmt-station.js state nic-1              # System State over ESP on UDP 664
  ./bin/nic-emulator.js host nic-1 hang          # hang the host ...
  ./bin/mgmt-station.js power-cycle nic-1        # ... the NIC still takes a secure power cycle
  ./bin/nic-emulator.js status                   # host states, SAs, counters
${isRoot ? '  rmcpping -c 3 127.0.1.1                       # FreeIPMI against the clear port 623\n' : ''}Ctrl-C stops the lab.
`);
  const stop = () => {
    emu.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  emu.once('exit', (code) => process.exit(code ?? 0));
}

main().catch((e) => {
  process.stderr.write(`lab: ${(e as Error).message}\n`);
  process.exit(1);
});
