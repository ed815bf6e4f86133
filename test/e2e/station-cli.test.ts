/**
 * The station CLI's process layer: forwarding verbs to the daemon (and when not to run them here), the lease
 * before enrolment writes anything, one daemon per station id, --timeout through the daemon, and user mistakes
 * that must end as one-line usage errors rather than internal errors or stray files.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { announceFile, announcedStore } from '../../mgmt-station/announce.js';
import { Lab, ROOT, waitFor } from '../support/lab.js';
import { UDP664_AH_LUA } from '../support/tshark.js';
import { StationDaemon, announceFileOf, announceStandIn, sleep, stopAllStations, withStoreDb, writePskFile } from '../support/station-daemon.js';
import { execLog, unfinishedCommands } from '../support/cluster.js';

describe('e2e station CLI: daemon forwarding, leases, usage errors', function () {
  this.timeout(60000);
  let lab: Lab;
  before(async () => {
    lab = new Lab('station-cli');
    await lab.startEmulator(['--nics', '2']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
  });
  afterEach(async () => {
    await stopAllStations();
    await lab.host('nic-1', 'cable-plug').catch(() => undefined);
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  it('a daemon killed (-9) with a command in flight: the CLI reports the outcome unknown and does not run it again', async () => {
    const d = await StationDaemon.start(lab, ['--poll-interval', '5000']);
    const before = (await execLog(lab, 'nic-1')).filter((e) => e.command === 'power-cycle').length;
    await lab.host('nic-1', 'cable-pull');
    const cli = lab.run(['power-cycle', 'nic-1', '--timeout', '10000'], { timeoutMs: 30000 });
    await waitFor('the daemon to log the command as sent', async () => (await unfinishedCommands(lab.store, 'nic-1')).length > 0, 5000, 20);
    await d.kill('SIGKILL');
    await sleep(300);
    await lab.host('nic-1', 'cable-plug');
    const r = await cli;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mgmt-station: E_OUTCOME_UNKNOWN: the station daemon at 127\.0\.0\.1:\d+ took power-cycle nic-1 and was lost before answering .*'mgmt-station log nic-1'/);
    await sleep(500); // room for anything the CLI might still have sent
    assert.equal((await execLog(lab, 'nic-1')).filter((e) => e.command === 'power-cycle').length - before, 0, 'the CLI ran nothing itself');
    // The next session of this station completes the logged command with its identity: exactly once.
    const next = await lab.run(['state', 'nic-1']);
    assert.equal(next.code, 0, next.stderr);
    assert.equal((await execLog(lab, 'nic-1')).filter((e) => e.command === 'power-cycle').length - before, 1, 'executed exactly once');
    const log = (await lab.run(['log', 'nic-1', '--json'])).json as { command: string; outcome: string }[];
    assert.equal(log.filter((c) => c.command === 'power-cycle').at(-1)!.outcome, 'acked');
  });
  it('enroll of a NIC another station owns: E_FENCED, and neither the NIC\'s trust anchor nor the store changes', async () => {
    await lab.station(['--id', 'B', 'enroll', 'nic-2', '--psk-file', writePskFile(lab, 'b.hex').file]);
    const b = await StationDaemon.start(lab, ['--id', 'B', '--poll-interval', '1000', '--lease-ms', '5000']);
    await waitFor('B to poll nic-2', async () => (await b.status()).nics.find((n) => n.id === 'nic-2' && n.host === 'S0'), 5000);
    assert.equal((await lab.run(['--id', 'B', 'refresh', 'nic-2'])).code, 0, 'B keys nic-2 itself (its IKE SA lives in the daemon)');
    const storedPsk = () => withStoreDb(lab, (db) => Buffer.from((db.prepare('SELECT psk FROM nics WHERE id = ?').get('nic-2') as { psk: Buffer }).psk).toString('hex'));
    const pskBefore = storedPsk();
    const other = writePskFile(lab, 'other.hex');
    const r = await lab.run(['enroll', 'nic-2', '--psk-file', other.file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mgmt-station: E_FENCED: nic-2 is owned by station 'B'/);
    assert.equal(storedPsk(), pskBefore, 'the store keeps the PSK B enrolled');
    // The NIC keeps its trust anchor, so B's IKE SA stays valid and its next refresh authenticates.
    const refresh = await lab.run(['--id', 'B', 'refresh', 'nic-2']);
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.match(refresh.stdout, /refreshed: SA generation \d+ committed .*\[via daemon\]/);
  });
  it('a second serve with the same --id and store is refused (E_RUNNING, exit 1) and the first stays announced', async () => {
    const first = await StationDaemon.start(lab, ['--poll-interval', '5000']);
    const r = await lab.run(['serve', '--control', '127.0.0.1:0']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `mgmt-station: E_RUNNING: station 'station-1' already has a daemon on this store: pid ${first.ready.pid} at http://${first.ready.control}; stop it first (kill ${first.ready.pid}) or use another --id\n`);
    const st = await lab.run(['status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.json.pid, first.ready.pid);
  });

  it('a second serve of the same id on the same store reached through a symlink is refused too (the store knows the first)', async () => {
    const first = await StationDaemon.start(lab, ['--poll-interval', '5000']);
    const link = join(lab.dir, 'store-link');
    symlinkSync(lab.dir, link);
    const r = await lab.run(['serve', '--control', '127.0.0.1:0'], { store: `sqlite:${join(link, 'station.db')}` });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^mgmt-station: E_RUNNING: station 'station-1' already has a daemon on this store: pid ${first.ready.pid} at http://${first.ready.control.replace(/\./g, '\\.')};`));
    await first.kill('SIGTERM');
  });

  it('a stopping daemon removes the announce file only if it is its own', async () => {
    const d = await StationDaemon.start(lab, ['--poll-interval', '5000']);
    const announce = announceFileOf(lab);
    const other = JSON.stringify({ pid: process.pid, control: '127.0.0.1:1', id: 'station-1' }) + '\n';
    writeFileSync(announce, other); // as if another daemon of this station had announced itself since
    await d.kill('SIGTERM');
    assert.equal(readFileSync(announce, 'utf8'), other);
    rmSync(announce);
    const own = await StationDaemon.start(lab, ['--poll-interval', '5000']);
    await own.kill('SIGTERM');
    assert.equal(existsSync(announce), false, 'its own file is removed');
  });
  it('--timeout reaches the daemon: a verb it forwards times out after the CLI\'s timeout, not the daemon\'s', async () => {
    await StationDaemon.start(lab, ['--poll-interval', '5000', '--timeout', '8000']);
    await lab.host('nic-1', 'cable-pull');
    const t0 = Date.now();
    const r = await lab.run(['state', 'nic-1', '--timeout', '700']);
    const ms = Date.now() - t0;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mgmt-station: E_TIMEOUT: no answer from nic-1 .* in 700 ms/);
    assert.ok(ms < 5000, `answered after ${ms} ms`);
  });

  /** A stand-in daemon that takes every request and never answers; `body` gets the URLs it was sent. */
  async function withHungDaemon(body: (urls: string[]) => Promise<void>): Promise<void> {
    const sockets = new Set<import('node:net').Socket>();
    const urls: string[] = [];
    const hung = http.createServer((req) => void urls.push(req.url ?? ''));
    hung.on('connection', (c) => sockets.add(c));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    const { port } = hung.address() as import('node:net').AddressInfo;
    const announce = announceStandIn(lab, `127.0.0.1:${port}`); // this test process stands in for its pid
    try {
      await body(urls);
    } finally {
      for (const c of sockets) c.destroy();
      await new Promise<void>((r) => hung.close(() => r()));
      rmSync(announce, { force: true });
    }
  }

  it('a hung daemon (takes the verb, never answers) holds the CLI for --timeout plus a margin, not 60 s', async () => {
    await withHungDaemon(async (urls) => {
      const t0 = Date.now();
      const r = await lab.run(['power-cycle', 'nic-1', '--timeout', '500'], { timeoutMs: 20000 });
      const ms = Date.now() - t0;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_OUTCOME_UNKNOWN: the station daemon at 127\.0\.0\.1:\d+ did not answer power-cycle nic-1 within 5500 ms; .*'mgmt-station log nic-1'/);
      assert.ok(ms >= 5500 && ms < 9000, `gave up after ${ms} ms`);
      assert.deepEqual(urls, ['/v1/nics/nic-1/power-cycle?timeout=500']);
    });
  });
  it('a hung daemon and a forwarded keying verb (sa manual): the daemon gets --timeout, the CLI waits 5 s + 5 s, not 60 s', async () => {
    await withHungDaemon(async (urls) => {
      const t0 = Date.now();
      const r = await lab.run(['sa', 'manual', 'nic-1', '--timeout', '500'], { timeoutMs: 30000 });
      const ms = Date.now() - t0;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_OUTCOME_UNKNOWN: the station daemon at 127\.0\.0\.1:\d+ did not answer sa manual nic-1 within 10000 ms; /);
      assert.ok(ms >= 10000 && ms < 14000, `gave up after ${ms} ms`);
      assert.deepEqual(urls, ['/v1/nics/nic-1/sa-manual?timeout=500']);
    });
  });

  it('a hung daemon and refresh all: only its listing was sent, so E_TIMEOUT (nothing was run), not E_OUTCOME_UNKNOWN', async () => {
    await withHungDaemon(async (urls) => {
      const r = await lab.run(['refresh', 'all', '--timeout', '500'], { timeoutMs: 30000 });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_TIMEOUT: the station daemon at 127\.0\.0\.1:\d+ did not list its NICs .*nothing was run: retry/);
      assert.deepEqual(urls, ['/v1/nics']);
    });
  });

  it('two stores in one directory: a verb or serve on the other store never goes to this store\'s daemon of the same id', async () => {
    const other = `sqlite:${join(lab.dir, 'other.db')}`;
    const b = await StationDaemon.start(lab, ['--id', 'B', '--poll-interval', '5000']);
    const r = await lab.run(['--id', 'B', 'state', 'nic-1'], { store: other });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^mgmt-station: E_STORE: no store at .*other\.db/, 'run here on its own store, not answered by B\'s daemon on station.db');
    const b2 = await lab.startStation('B', ['--poll-interval', '5000'], { store: other });
    try {
      assert.notEqual(announceFile(other, 'B'), announceFileOf(lab, 'B'));
      assert.equal(JSON.parse(readFileSync(announceFile(other, 'B'), 'utf8')).store, `sqlite:${join(lab.dir, 'other.db')}`);
      const st2 = await lab.run(['--id', 'B', 'status', '--json'], { store: other });
      assert.equal(st2.json.pid, b2.ready.pid);
      const st1 = await lab.run(['--id', 'B', 'status', '--json']);
      assert.equal(st1.json.pid, b.ready.pid);
    } finally {
      await b2.kill('SIGKILL');
    }
  });

  it('announce files: one per store URL and station id (PostgreSQL URLs too; a password is neither hashed nor written)', () => {
    assert.notEqual(announceFile('postgres://u@db:5432/a', 'A'), announceFile('postgres://u@db:5432/b', 'A'));
    assert.notEqual(announceFile('postgres://u@db:5432/a', 'A'), announceFile('postgres://u@db:5432/a', 'B'));
    assert.equal(announceFile('postgres://u:one@db:5432/a', 'A'), announceFile('postgres://u:two@db:5432/a', 'A'));
    assert.equal(announcedStore('postgres://u:secret@db:5432/a'), 'postgres://u:***@db:5432/a');
    assert.equal(announceFile(`sqlite:${join(lab.dir, 'x.db')}`, 'A'), announceFile(`sqlite:${join(lab.dir, '.', 'x.db')}`, 'A'));
    assert.equal(dirname(announceFile(`sqlite:${join(lab.dir, 'x.db')}`, 'A')), lab.dir, 'beside an SQLite store');
  });

  it('serve with a bad --control/--listen/--log-format: one E_USAGE line naming the option, exit 2', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const inUse = `127.0.0.1:${(busy.address() as net.AddressInfo).port}`;
    try {
      const cases: [string[], RegExp][] = [
        [['--control', '127.0.0.1:abc'], /^mgmt-station: E_USAGE: --control 127\.0\.0\.1:abc: expected HOST:PORT with a port from 0 \(any\) to 65535\n$/],
        [['--control', '127.0.0.1:99999'], /^mgmt-station: E_USAGE: --control 127\.0\.0\.1:99999: expected HOST:PORT/],
        [['--listen', '127.0.0.1:99999'], /^mgmt-station: E_USAGE: --listen 127\.0\.0\.1:99999: expected HOST:PORT/],
        [['--log-format', 'bogus'], /^mgmt-station: E_USAGE: --log-format must be text or json, got 'bogus'\n$/],
        [['--control', inUse], new RegExp(`^mgmt-station: E_USAGE: --control ${inUse}: the address is in use .*\\(EADDRINUSE\\)\\n$`)],
        [['--control', '192.0.2.1:0'], /^mgmt-station: E_USAGE: --control 192\.0\.2\.1:0: the control API is on loopback only; give 127\.x\.y\.z or localhost\n$/],
        [['--listen', inUse.replace('127.0.0.1', 'nohost.invalid')], /^mgmt-station: E_USAGE: --listen nohost\.invalid:\d+: (unknown host name|host name lookup failed)/],
      ];
      for (const [args, want] of cases) {
        const r = await lab.run(['serve', ...args]);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, want, args.join(' '));
      }
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
  });

  it('keys to a path that cannot be written, a --cluster-key that is a directory: one line naming the path', async () => {
    for (const [file, why] of [[join(lab.dir, 'missing', 'x'), 'its directory does not exist'], [lab.dir, 'it is a directory']]) {
      const r = await lab.run(['keys', '--wireshark', file]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, `mgmt-station: E_USAGE: cannot write --wireshark ${file}: ${why}\n`);
    }
    const dir = join(lab.dir, 'keydir');
    mkdirSync(dir, { mode: 0o700 });
    const r = await lab.run(['list'], { keyFile: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `mgmt-station: E_KEYFILE: cluster key file ${dir} is a directory; pass the key file itself (--cluster-key FILE)\n`);
  });
  it('a mistyped --cluster-key for a store that holds keys: E_KEYFILE naming the key id it expects; nothing created', async () => {
    const typo = join(lab.dir, 'nonexist', 'typo.key');
    const expected = withStoreDb(lab, (db) => (db.prepare(`SELECT v FROM store_meta WHERE k = 'cluster_key_id'`).get() as { v: string }).v);
    for (const args of [['list'], ['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]]) {
      const r = await lab.run(args, { keyFile: typo });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, args[0] === 'list'
        ? new RegExp(`^mgmt-station: E_KEYFILE: no cluster key: neither ${typo} nor LIFELINE_CLUSTER_KEY exists`)
        : new RegExp(`^mgmt-station: E_KEYFILE: cluster key file ${typo} does not exist, and store .* holds keys wrapped under cluster key ${expected}: pass that key`));
      assert.doesNotMatch(r.stderr, /created cluster key/);
      assert.equal(existsSync(join(lab.dir, 'nonexist')), false, 'no directory or key file created');
    }
  });

  it('read verbs on a store that does not exist: E_STORE "no store at PATH" (exit 3), nothing created', async () => {
    const missing = join(lab.dir, 'nodir', 'sub', 'x.db');
    for (const args of [['state', 'nic-1'], ['list'], ['log', 'nic-1'], ['audit', 'nic-1'], ['keys', '--wireshark', join(lab.dir, 'esp_sa')]]) {
      const r = await lab.run([...args, '--no-daemon'], { store: `sqlite:${missing}` });
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `mgmt-station: E_STORE: no store at ${missing}: check --store (only enroll, sa manual and serve create a store)\n`);
    }
    assert.equal(existsSync(join(lab.dir, 'nodir')), false, 'no directory or database created');
  });

  it('enroll with a bad PSK file on a new store: E_USAGE (exit 2) before anything is created', async () => {
    const dir = join(lab.dir, 'badpsk');
    const r = await lab.run(['enroll', 'nic-1', '--psk-file', join(lab.dir, 'no-such.hex'), '--no-daemon'], { store: `sqlite:${join(dir, 'station.db')}`, keyFile: join(dir, 'cluster.key') });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^mgmt-station: E_USAGE: /);
    assert.equal(existsSync(dir), false, 'no store, key file or directory created');
  });

  it('a new store with no key file: serve creates both (first use in a lab)', async () => {
    const dir = join(lab.dir, 'fresh');
    const d = await lab.startStation('fresh', [], { store: `sqlite:${join(dir, 'db', 'station.db')}`, keyFile: join(dir, 'keys', 'cluster.key') });
    try {
      assert.match(d.stderr, /created cluster key .*cluster\.key \(0600\)/);
      assert.equal(existsSync(join(dir, 'db', 'station.db')), true);
    } finally {
      await d.kill('SIGKILL');
    }
  });

  it('log and audit of an unknown NIC: E_NOT_FOUND like state; extra arguments: E_USAGE exit 2; keys says what it wrote where', async () => {
    for (const verb of ['log', 'audit']) {
      const r = await lab.run([verb, 'nic-99']);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr, `mgmt-station: E_NOT_FOUND: NIC 'nic-99' is not known to this station; 'mgmt-station list' shows the NICs it knows\n`);
    }
    for (const args of [['state', 'nic-1', 'nic-2'], ['list', 'nic-1'], ['sa', 'manual', 'nic-1', 'nic-2']]) {
      const r = await lab.run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^mgmt-station: E_USAGE: \w+ takes (no|\d) arguments?; unexpected '[\w-]+'/);
    }
    // A missing argument is a usage error before the store is looked at, also when the store does not exist.
    for (const [args, usage] of [[['ping'], 'ping TARGET'], [['sa', 'auto', 'nic-1'], 'sa manual TARGET'], [['replay'], 'replay TABLE']] as const) {
      const r = await lab.run([...args], { store: `sqlite:${join(lab.dir, 'no-such-dir', 'x.db')}` });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `mgmt-station: E_USAGE: usage: mgmt-station ${usage}\n`);
    }
    const ike = join(lab.dir, 'ikev2_keys');
    const r = await lab.run(['keys', '--ikev2', ike]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^wrote \\d+ IKE SA\\(s\\) to ${ike}\\n$`));
  });
  it('the AH dissector script docs/CAPTURES.md names ships in scripts/ and is the one the tests use', () => {
    assert.equal(readFileSync(join(ROOT, 'scripts', 'udp664_ah.lua'), 'utf8'), UDP664_AH_LUA);
  });
});
