/**
 * Two lab hosts, one station (issue 16 criterion 4): two emulators in two network namespaces that the test makes
 * (`ip netns add`, a veth pair between them, addresses from 10.77.0.0/16 inside them only), each with its own
 * --id-prefix and its NICs' addresses on its end of the veth; one station daemon in the first namespace enrols the
 * NICs of both, sends them secure commands, refreshes them all, and each emulator's execution log shows each
 * command once. A third emulator started with the first one's prefix is refused at enrolment (E_NIC_IDENTITY).
 *
 * The emulators' control APIs listen on loopback only; the station reaches the second host's through a Unix-socket
 * relay (test/support/unix-bridge.ts), as it would through `ssh -L` between real hosts.
 *
 * Needs root and iproute2 (CI has both); skipped with the reason otherwise. Namespaces and processes are removed
 * in `after`, also when a step fails, and every wait is bounded.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EMULATOR, STATION, isRoot } from '../support/lab.js';

const BRIDGE = fileURLToPath(new URL('../support/unix-bridge.js', import.meta.url));
const NICS = 8;
const TAG = `llns-2h-${process.pid % 100000}`;
const NS = { a: `${TAG}-a`, b: `${TAG}-b` };
/** Host A: 10.77.1.0/24 (the station at .254), host B: 10.77.2.0/24, the clashing emulator on B: 10.77.3.0/24. */
const STATION_ADDR = '10.77.1.254';

function skipReason(): string | null {
  if (!isRoot) return 'needs root to create network namespaces (ip netns add); CI runs as root';
  try {
    execFileSync('sh', ['-c', 'command -v ip'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 (ip) is not installed';
  }
  return null;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
}

interface Run { code: number | null; stdout: string; stderr: string; json?: any }

describe('e2e: two lab hosts in network namespaces, one station', function () {
  this.timeout(120000);
  const skip = skipReason();
  const children = new Set<ChildProcess>();
  let dir = '';
  let made: string[] = [];

  /** `ip netns exec NS node ARGV`, kept for cleanup; resolves on the first stdout line `ready(line)` accepts. */
  function start(ns: string, argv: string[], ready: (line: string) => boolean, timeoutMs = 20000): Promise<{ child: ChildProcess; line: string }> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let out = '';
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${argv.slice(0, 2).join(' ')} not ready in ${timeoutMs} ms: ${err}`)), timeoutMs);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const line = out.split('\n').find((l) => ready(l));
        if (line !== undefined) {
          clearTimeout(t);
          resolve({ child, line });
        }
      });
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`${argv.slice(0, 2).join(' ')} exited (${code}) before ready: ${err}`));
      });
    });
  }

  /** A CLI run to completion in namespace `ns`, bounded in time. */
  function run(ns: string, bin: string, args: string[], timeoutMs = 60000): Promise<Run> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${args.join(' ')} did not finish in ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(t);
        children.delete(child);
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ code, stdout, stderr, json });
      });
    });
  }

  const storeArgs = () => ['--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key')];
  /** A station verb in namespace A (where its daemon runs), through emulator control `emulator` (A's own, or a relay). */
  const station = (args: string[], emulator = '127.0.0.1:8623') => run(NS.a, STATION, [...args, '--json', ...storeArgs(), '--emulator', emulator]);
  const emulatorCli = (ns: string, args: string[], control = '127.0.0.1:8623') => run(ns, EMULATOR, [...args, '--json', '--control', control]);
  /** A JSON ready line (`{"ready":true,...}`); an error document (`{"ok":false,...}`) fails the step with its message. */
  const readyJson = async (p: Promise<{ child: ChildProcess; line: string }>, what: string) => {
    const { line } = await p;
    assert.equal(JSON.parse(line).ready, true, `${what}: ${line}`);
  };
  const startEmulator = (ns: string, prefix: string, first: string, nics: number, control: string) =>
    readyJson(start(ns, [EMULATOR, 'start', '--json', '--nics', String(nics), '--id-prefix', prefix, '--first-address', first, '--data-dir', join(dir, `nics-${prefix}-${control.split(':')[1]}`),
      '--control', control, '--boot-delay', '300'], (l) => l.startsWith('{')), `emulator ${prefix} in ${ns}`);

  before(async function () {
    if (skip) {
      console.log(`      skipped: ${skip}`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'lifeline-two-hosts-'));
    // Namespaces left by an earlier run of this process id (killed before its cleanup) would make `add` fail.
    for (const ns of Object.values(NS)) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* none */
      }
    }
    for (const ns of Object.values(NS)) {
      ip('netns', 'add', ns);
      made.push(ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    // The veth pair is made inside A with its peer moved straight into B: nothing in the root namespace.
    ip('-n', NS.a, 'link', 'add', 'lla0', 'type', 'veth', 'peer', 'name', 'llb0', 'netns', NS.b);
    ip('-n', NS.a, 'addr', 'add', `${STATION_ADDR}/16`, 'dev', 'lla0');
    for (let i = 1; i <= NICS; i++) ip('-n', NS.a, 'addr', 'add', `10.77.1.${i}/16`, 'dev', 'lla0');
    for (let i = 1; i <= NICS; i++) ip('-n', NS.b, 'addr', 'add', `10.77.2.${i}/16`, 'dev', 'llb0');
    ip('-n', NS.b, 'addr', 'add', '10.77.3.1/16', 'dev', 'llb0');
    ip('-n', NS.a, 'link', 'set', 'lla0', 'up');
    ip('-n', NS.b, 'link', 'set', 'llb0', 'up');
    // The veth carries once both ends are up (operstate UP): wait for it, bounded.
    for (const [ns, dev] of [[NS.a, 'lla0'], [NS.b, 'llb0']]) {
      const t0 = Date.now();
      while (!execFileSync('ip', ['-n', ns, '-o', 'link', 'show', dev], { encoding: 'utf8', timeout: 5000 }).includes('state UP')) {
        assert.ok(Date.now() - t0 < 5000, `${dev} in ${ns} not up after 5 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    writeFileSync(join(dir, 'psk.hex'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    // Host A: lab-a's emulator and the station; host B: lab-b's emulator, and one that clashes with lab-a's ids.
    await Promise.all([
      startEmulator(NS.a, 'lab-a', '10.77.1.1', NICS, '127.0.0.1:8623'),
      startEmulator(NS.b, 'lab-b', '10.77.2.1', NICS, '127.0.0.1:8623'),
      startEmulator(NS.b, 'lab-a', '10.77.3.1', 1, '127.0.0.1:8625'),
    ]);
    // B's control APIs, as A's loopback 127.0.0.1:8624 and :8625 (ssh -L between real hosts).
    for (const port of ['8623', '8625']) {
      const sock = join(dir, `b-${port}.sock`);
      await start(NS.b, [BRIDGE, 'serve', sock, `127.0.0.1:${port}`], (l) => l === 'ready', 10000);
      await start(NS.a, [BRIDGE, 'listen', `127.0.0.1:${port === '8623' ? '8624' : '8625'}`, sock], (l) => l === 'ready', 10000);
    }
    await readyJson(start(NS.a, [STATION, 'serve', '--json', '--id', 'station-1', '--listen', `${STATION_ADDR}:7001`, '--poll-interval', '1000', ...storeArgs()], (l) => l.startsWith('{'), 20000), 'station daemon');
  });

  after(async () => {
    const exits = [...children].map((c) => new Promise<void>((r) => {
      if (c.exitCode !== null || c.signalCode !== null) return r();
      const t = setTimeout(() => c.kill('SIGKILL'), 3000);
      c.once('exit', () => {
        clearTimeout(t);
        r();
      });
      c.kill('SIGTERM');
    }));
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 8000))]);
    for (const c of children) c.kill('SIGKILL');
    for (const ns of made) {
      try {
        ip('netns', 'del', ns);
      } catch (e) {
        console.error(`      could not delete namespace ${ns}: ${(e as Error).message}`);
      }
    }
    made = [];
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ids = (prefix: string) => Array.from({ length: NICS }, (_, i) => `${prefix}-nic-${i + 1}`);

  it('enrols the NICs of both hosts into one station; their ids carry the emulators\' prefixes, their serials differ', async () => {
    const a = await station(['enroll', 'all', '--psk-file', join(dir, 'psk.hex')]);
    assert.deepEqual([a.json?.ok, a.json?.nics, a.json?.failed, a.json?.viaDaemon], [true, NICS, [], true], a.stderr + a.stdout);
    const b = await station(['enroll', 'all', '--psk-file', join(dir, 'psk.hex')], '127.0.0.1:8624');
    assert.deepEqual([b.json?.ok, b.json?.nics, b.json?.failed], [true, NICS, []], b.stderr + b.stdout);
    const list = await station(['list']);
    assert.deepEqual(list.json.map((n: { id: string }) => n.id).sort(), [...ids('lab-a'), ...ids('lab-b')].sort());
    const addr = Object.fromEntries(list.json.map((n: { id: string; address: string }) => [n.id, n.address]));
    assert.equal(addr['lab-a-nic-3'], '10.77.1.3');
    assert.equal(addr['lab-b-nic-3'], '10.77.2.3');
    const sa = await emulatorCli(NS.a, ['status', 'lab-a-nic-1']);
    const sb = await emulatorCli(NS.b, ['status', 'lab-b-nic-1']);
    assert.match(sa.json.serial, /^LL[0-9A-F]{12}$/);
    assert.notEqual(sa.json.serial, sb.json.serial);
    assert.notEqual(sa.json.systemGuid, sb.json.systemGuid);
  });

  it('refuses a NIC of a third emulator that gives out an enrolled id (same --id-prefix): E_NIC_IDENTITY, nothing changed', async () => {
    const before = (await station(['list'])).json.find((n: { id: string }) => n.id === 'lab-a-nic-1');
    const r = await station(['enroll', 'lab-a-nic-1', '--psk-file', join(dir, 'psk.hex')], '127.0.0.1:8625');
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.equal(r.json?.error?.code, 'E_NIC_IDENTITY', r.stdout);
    assert.match(r.json.error.message, /--id-prefix/);
    const after = (await station(['list'])).json.find((n: { id: string }) => n.id === 'lab-a-nic-1');
    assert.deepEqual(after, before);
    const clash = await emulatorCli(NS.b, ['status', 'lab-a-nic-1'], '127.0.0.1:8625');
    assert.equal(clash.json.sa.active, null, 'no SA was negotiated with the clashing NIC');
  });

  it('sends secure commands to the NICs of both hosts, refreshes them all, and each emulator ran each command once', async () => {
    const reset = await station(['reset', 'all']);
    assert.deepEqual([reset.json?.ok, reset.json?.nics, reset.json?.failed], [true, 2 * NICS, []], reset.stderr + reset.stdout);
    // Back up after the boot delay: refresh needs the host agent, which runs only while the OS is up.
    for (const [ns] of [[NS.a], [NS.b]]) {
      const t0 = Date.now();
      for (;;) {
        const s = await emulatorCli(ns, ['status']);
        if (s.json.every((n: { host: string }) => n.host === 'up')) break;
        assert.ok(Date.now() - t0 < 15000, `hosts in ${ns} not up again: ${JSON.stringify(s.json.map((n: { host: string }) => n.host))}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const refresh = await station(['refresh', 'all']);
    assert.deepEqual([refresh.json?.ok, refresh.json?.nics, refresh.json?.failed, refresh.json?.viaDaemon], [true, 2 * NICS, [], true], refresh.stderr + refresh.stdout);
    const cycle = await station(['power-cycle', 'lab-a-*,lab-b-*']);
    assert.deepEqual([cycle.json?.ok, cycle.json?.nics, cycle.json?.failed], [true, 2 * NICS, []], cycle.stderr + cycle.stdout);
    for (const [ns, prefix] of [[NS.a, 'lab-a'], [NS.b, 'lab-b']]) {
      const st = (await emulatorCli(ns, ['status'])).json as { id: string; sa: { active: { generation: number } } }[];
      for (const n of st) assert.equal(n.sa.active.generation, 2, `${n.id}: the refreshed SA is active`);
      const logs = await emulatorCli(ns, ['exec-log', `${prefix}-*`]);
      assert.equal(logs.json.ok, true, logs.stderr);
      assert.deepEqual(logs.json.results.map((r: { nic: string }) => r.nic), ids(prefix));
      for (const r of logs.json.results as { nic: string; entries: { via: string; command: string; generation: number }[] }[]) {
        assert.deepEqual(r.entries.map((e) => `${e.via} ${e.command} sa=${e.generation}`), ['secure reset sa=1', 'secure power-cycle sa=2'], r.nic);
      }
    }
    // The clashing emulator's NIC saw none of it.
    const clash = await emulatorCli(NS.b, ['exec-log', 'lab-a-nic-1'], '127.0.0.1:8625');
    assert.deepEqual(clash.json, []);
  });
});
