/**
 * Issue 17's CLI frictions, as a user meets them, against real processes: a NIC by address in every verb, fleet
 * targets (all, lists, patterns) for reads, commands and host events with a summary by error code, readable command
 * numbers, one way to print counters and SA slots, exit codes (an illegal host transition, stopping an emulator
 * that is not running), help and version. The in-process half is test/lib/cli-args.test.ts.
 */
import assert from 'node:assert/strict';
import { EMULATOR, Lab, STATION, isRoot, type RunResult } from '../support/lab.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';

describe('e2e: CLI frictions (issue 17)', function () {
  this.timeout(90000);
  let lab: Lab;
  /** nic-2 by address, as a user would type it: its own address, or ADDRESS:PORT in port-per-NIC mode. */
  let nic2At: string;
  before(async () => {
    lab = new Lab('cli-frictions');
    await lab.startEmulator(['--nics', '3']);
    const e = await lab.station(['enroll', 'all', '--psk-file', writePskFile(lab).file]);
    assert.deepEqual([e.ok, e.nics, e.done], [true, 3, 3]);
    const n2 = await lab.nic('nic-2');
    nic2At = isRoot ? n2.address : `${n2.address}:${n2.ports.clear}`;
  });
  afterEach(async () => stopAllStations());
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  const emulator = (args: string[]) => lab.emulatorCli(args);
  const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

  it("a NIC by address where a verb takes a NIC: 'state ADDRESS' as 'sa manual ADDRESS' (no daemon and through one)", async () => {
    const r = await lab.station(['state', nic2At]);
    assert.equal(r.nic, 'nic-2');
    await StationDaemon.start(lab, ['--poll-interval', '5000']);
    const via = await lab.run(['state', nic2At]);
    ok(via, 'state ADDRESS via daemon');
    assert.match(via.stdout, /^nic-2: system state 0 .*\[via daemon\]\n$/);
    const none = await lab.run(['state', '127.0.0.9:9']);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /^mgmt-station: E_NOT_FOUND: no NIC at 127\.0\.0\.9:9\n$/);
  });

  it('all, a list and a pattern for reads and commands: one line per NIC, a summary, JSON with --json', async () => {
    const all = await lab.run(['state', 'all', '--json']);
    ok(all, 'state all');
    assert.deepEqual([all.json.ok, all.json.nics, all.json.done, all.json.failed], [true, 3, 3, []]);
    assert.deepEqual(all.json.results.map((x: { nic: string }) => x.nic), ['nic-1', 'nic-2', 'nic-3']);
    const list = await lab.run(['ping', 'nic-3,nic-1']);
    ok(list, 'ping list');
    assert.match(list.stdout, /^pong from nic-3: .*\npong from nic-1: .*\nping: 2\/2 NICs in [\d.]+ s\n$/);
    const pattern = await lab.run(['power-up', 'nic-*', '--json']);
    ok(pattern, 'power-up pattern');
    assert.equal(pattern.json.done, 3);
    const refresh = await lab.run(['refresh', `nic-1,${nic2At}`, '--json']);
    ok(refresh, 'refresh list');
    assert.deepEqual(refresh.json.results.map((x: { nic: string; generation: number }) => [x.nic, x.generation]), [['nic-1', 2], ['nic-2', 2]]);
    await StationDaemon.start(lab, ['--poll-interval', '5000']);
    const via = await lab.run(['state', 'all']);
    ok(via, 'state all via daemon');
    assert.match(via.stdout, /^state: 3\/3 NICs in [\d.]+ s \[via daemon\]$/m);
    const nomatch = await lab.run(['state', 'web-*']);
    assert.equal(nomatch.code, 1);
    assert.match(nomatch.stderr, /^mgmt-station: E_NOT_FOUND: no NIC matches 'web-\*'/);
  });

  it("a NIC's second command is 'log entry 3', and log numbers it 2; audit says how its entries divide", async () => {
    const logged = (await lab.run(['log', 'nic-3', '--json'])).json as { number: number; index: number; at: string; time?: number }[];
    const before = logged.length;
    // Times as ISO 8601 in JSON too, not epoch ms.
    for (const c of logged) assert.match(c.at, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    assert.ok(logged.every((c) => c.time === undefined));
    ok(await lab.run(['power-up', 'nic-3']), 'first');
    const second = await lab.run(['power-up', 'nic-3', '--no-daemon']);
    ok(second, 'second');
    assert.match(second.stdout, /^power-up acknowledged by nic-3: .*\(log entry \d+, rmcp seq \d+, tag \d+\)\n$/);
    assert.doesNotMatch(second.stdout, /command #/);
    const log = (await lab.run(['log', 'nic-3'])).stdout.trim().split('\n');
    assert.equal(log.length, before + 2);
    assert.match(log.at(-1)!, new RegExp(`^${before + 2} \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z power-up entry=\\d+ `), 'numbered 1, 2, ... with the log entry beside it');
    const entry = /log entry (\d+)/.exec(second.stdout)![1];
    assert.match(log.at(-1)!, new RegExp(` entry=${entry} `));
    const audit = await lab.run(['audit', 'nic-3']);
    ok(audit, 'audit');
    assert.match(audit.stdout, new RegExp(`^nic-3: command log intact \\(\\d+ entries: ${before + 2} commands and their outcomes; head entry \\d+\\)\\n$`));
    const all = await lab.run(['audit', 'all', '--json']);
    ok(all, 'audit all');
    assert.equal(all.json.done, 3);
  });

  it("list and nic-emulator status show SA slots alike (active/previous/pending) and counters as dropped=0 / refused=0", async () => {
    const list = await lab.run(['list']);
    ok(list, 'list');
    for (const line of list.stdout.trim().split('\n')) assert.match(line, /  sa active=\d+ previous=(\d+|-) pending=(\d+|-)$/);
    // The fleet: a header, a line per NIC in about 80 columns, a summary (issue 17: one 130-column line per NIC, no
    // header, no summary). --json is the same array as before.
    const st = await emulator(['status', 'nic-*']);
    ok(st, 'status nic-*');
    const lines = st.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1 + 3 + 2, st.stdout);
    assert.match(lines[0], /^NIC +ADDRESS +HOST +LINK +SA act\/prev\/pend +CLEAR +SECURE +DROPPED +REFUSED +WRITES$/);
    for (const line of lines.slice(1, 4)) assert.match(line, /^nic-\d +\S+ +up +up +\d+\/(\d+|-)\/(\d+|-) +\d+ +\d+ +\d+ +\d+ +\d+$/);
    assert.match(lines[4], /^3 NICs, 3 running, 3 with an SA: host up=3; link up=3$/);
    assert.match(lines[5], /^packets: dropped=\d+( \([a-z_=\d,-]+\))? refused=\d+$/);
    for (const line of lines) assert.ok(line.length <= 84, `${line.length} columns: ${line}`);
    const j = await emulator(['status', 'nic-*', '--json']);
    assert.deepEqual(j.json.map((n: { id: string }) => n.id), ['nic-1', 'nic-2', 'nic-3']);
    // One NIC: its detail, in the words list uses.
    const one = await emulator(['status', 'nic-2']);
    ok(one, 'status nic-2');
    assert.match(one.stdout, /^nic-2: \S+ \(clear \d+, secure \d+, ike \d+\), running\n/);
    assert.match(one.stdout, /\n  sa active=\d+ previous=(\d+|-) pending=(\d+|-)\n/);
    assert.match(one.stdout, /\n  rx clear=\d+ secure=\d+ dropped=\d+( \([a-z_=\d,-]+\))? refused=\d+ executed=\d+\n/);
    assert.doesNotMatch(one.stdout, /dropped (none|\d)/);
  });

  it('nic-emulator: an illegal host transition exits 1 (not 2), and a fleet of host events reports failures by code', async () => {
    ok(await emulator(['host', nic2At, 'hang']), 'hang by address');
    const again = await emulator(['host', 'nic-2', 'hang']);
    assert.equal(again.code, 1, again.stderr);
    assert.match(again.stderr, /^nic-emulator: E_ILLEGAL_TRANSITION: /);
    const wake = await emulator(['host', 'all', 'wake']);
    assert.equal(wake.code, 1, wake.stderr);
    assert.match(wake.stdout, /^nic-2: wake: hung -> up\nhost wake: 1\/3 NICs in [\d.]+ s, 2 failed \(E_ILLEGAL_TRANSITION 2\)\n$/);
    assert.equal(wake.stderr.split('\n').filter((l) => /^nic-emulator: nic-[13]: E_ILLEGAL_TRANSITION: /.test(l)).length, 2);
    const log = await emulator(['exec-log', 'nic-1,nic-2', '--json']);
    ok(log, 'exec-log list');
    assert.deepEqual(log.json.results.map((x: { nic: string }) => x.nic), ['nic-1', 'nic-2']);
  });

  it('nic-emulator stop with nothing running: says so, exit 0 (it is stopped)', async () => {
    const r = await lab.run(['stop', '--control', '127.0.0.1:1'], { bin: EMULATOR });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'nic-emulator: no emulator is running at 127.0.0.1:1; nothing to stop\n');
    const j = await lab.run(['stop', '--control', '127.0.0.1:1', '--json'], { bin: EMULATOR });
    assert.deepEqual([j.code, j.json], [0, { ok: true, running: false }]);
  });

  it('usage errors, help and version as processes: the issue\'s command line, did you mean, VERB --help, --version', async () => {
    const bad = await lab.exec(process.execPath, [STATION, 'list', '--psk-file', '/nonexistent', '--transform', 'bogus', '--listen', '1.2.3.4:1']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, "mgmt-station: E_USAGE: list does not take --psk-file (see 'mgmt-station list --help')\n");
    const typo = await lab.exec(process.execPath, [STATION, 'stat', 'nic-1']);
    assert.equal(typo.code, 2);
    assert.equal(typo.stderr, "mgmt-station: E_USAGE: unknown command 'stat'; did you mean 'state'? run 'mgmt-station --help' for the list\n");
    for (const [bin, verb] of [[STATION, 'state'], [STATION, 'serve'], [EMULATOR, 'host'], [EMULATOR, 'start']]) {
      const h = await lab.exec(process.execPath, [bin, verb, '--help']);
      assert.equal(h.code, 0, h.stderr);
      assert.match(h.stdout, new RegExp(`^Usage: [a-z-]+ ${verb} `));
      assert.deepEqual(h.stdout.split('\n').filter((l) => l.length > 80), []);
    }
    for (const bin of [STATION, EMULATOR]) {
      const v = await lab.exec(process.execPath, [bin, '--version']);
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stdout, /^(mgmt-station|nic-emulator) \d+\.\d+\.\d+ \(lifeline, node v\d+/);
    }
  });
});
