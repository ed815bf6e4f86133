/**
 * Issue 2, "mgmt-station — first slice": after `mgmt-station sa manual nic-1`, every secure verb works over
 * ESP on UDP/664 with `--json` output, power commands drive the emulated host as ASF says, and failures
 * (NIC unreachable, unknown NIC) are one clear line on stderr with a non-zero exit code.
 */
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../support/lab.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

describe('e2e: secure commands from mgmt-station', function () {
  this.timeout(20000);
  let lab: Lab;

  before(async () => {
    lab = new Lab('secure');
    await lab.startEmulator(['--nics', '2']);
  });
  after(async () => lab?.cleanup());

  it('sa manual nic-1 installs generation 1 in the NIC and keeps it in the station', async () => {
    const r = await lab.station(['sa', 'manual', 'nic-1']);
    for (const k of ['ok', 'nic', 'generation', 'policy', 'transform', 'toNicSpi', 'fromNicSpi']) assert.ok(k in r, `--json has ${k}: ${JSON.stringify(r)}`);
    assert.equal(r.ok, true);
    assert.equal(r.nic, 'nic-1');
    assert.equal(r.generation, 1);
    assert.equal(r.policy, 'esp');
    assert.equal(r.transform, 'aes-gcm-16');
    const s = await lab.nic('nic-1');
    assert.equal(s.sa.active.generation, 1);
    assert.equal(s.sa.active.toNicSpi, r.toNicSpi);
    assert.equal(s.sa.active.fromNicSpi, r.fromNicSpi);
    const list = await lab.station(['list']);
    assert.deepEqual(list.map((n: any) => [n.id, n.sas.map((x: any) => `${x.generation}:${x.state}`)]), [['nic-1', ['1:active']]]);
  });

  it('ping --json: a Presence Pong under SA 1', async () => {
    const r = await lab.station(['ping', 'nic-1']);
    assert.equal(r.ok, true);
    assert.equal(r.nic, 'nic-1');
    assert.equal(r.request, 'presence-ping');
    assert.equal(r.generation, 1);
    assert.equal(r.attempts, 1);
    assert.equal(typeof r.rttMs, 'number');
    assert.equal(r.response.type, 'presence-pong');
    assert.equal(r.response.iana, 4542);
    assert.equal(r.response.supportedInteractions & 0x80, 0x80, 'RMCP security extensions supported (DSP0136 §3.2.4.2)');
  });

  it('ping (text): one line naming the NIC, the SA and the round trip', async () => {
    const r = await lab.run(['ping', 'nic-1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pong from nic-1: SA 1, [\d.]+ ms: entities 0x\d+ interactions 0x80\n$/);
  });

  it('state --json: System State S0 while the host is up', async () => {
    const r = await lab.station(['state', 'nic-1']);
    assert.equal(r.request, 'system-state-request');
    assert.deepEqual(r.response, { type: 'system-state-response', tag: r.response.tag, systemState: 0, watchdogExpired: false });
  });

  it('capabilities --json: every power command offered on the secure port only (clear management off)', async () => {
    const r = await lab.station(['capabilities', 'nic-1']);
    assert.equal(r.request, 'capabilities-request');
    assert.equal(r.response.type, 'capabilities-response');
    assert.equal(r.response.iana, 4542);
    assert.equal(r.response.systemCapabilities, 0x0f, 'bits 3:0 = reset, power-up, power-down, power-cycle on the secure port');
  });

  /** A power command: acknowledged (RMCP ACK of its sequence), logged by the NIC, and the host moves. */
  async function command(verb: string, hostBefore: string, hostAfter: string) {
    assert.equal((await lab.nic('nic-1')).host, hostBefore);
    const executed = (await lab.nic('nic-1')).executed;
    const r = await lab.station([verb, 'nic-1']);
    assert.equal(r.ok, true);
    assert.equal(r.request, verb);
    assert.deepEqual(r.response, { type: 'rmcp-ack', sequence: r.command.rmcpSeq });
    for (const k of ['index', 'rmcpSeq', 'tag']) assert.equal(typeof r.command[k], 'number', `command.${k}`);
    const s = await lab.nic('nic-1');
    assert.equal(s.executed, executed + 1);
    const log = (await lab.control.get<any[]>('/v1/nics/nic-1/exec-log')).at(-1);
    assert.equal(log.command, verb);
    assert.equal(log.via, 'secure');
    assert.equal(log.generation, 1);
    assert.equal(log.rmcpSeq, r.command.rmcpSeq);
    assert.equal(log.tag, r.command.tag);
    assert.equal(log.hostBefore, hostBefore);
    assert.equal(log.hostAfter, hostAfter);
    return r;
  }

  it('reset: up -> pre-boot, then up after the boot delay', async () => {
    await command('reset', 'up', 'pre-boot');
    await waitFor('host up after reset', async () => (await lab.nic('nic-1')).host === 'up', 5000);
  });

  it('power-down: up -> off; System State then reports S5', async () => {
    await command('power-down', 'up', 'off');
    assert.equal((await lab.station(['state', 'nic-1'])).response.systemState, 5);
  });

  it('power-up: off -> pre-boot -> up', async () => {
    await command('power-up', 'off', 'pre-boot');
    await waitFor('host up after power-up', async () => (await lab.nic('nic-1')).host === 'up', 5000);
  });

  it('power-cycle: up -> pre-boot -> up', async () => {
    await command('power-cycle', 'up', 'pre-boot');
    await waitFor('host up after power-cycle', async () => (await lab.nic('nic-1')).host === 'up', 5000);
  });

  it('the station log lists every command with its outcome "acked"', async () => {
    const log = await lab.station(['log', 'nic-1']);
    assert.deepEqual(log.map((e: any) => [e.command, e.outcome]), [
      ['reset', 'acked'], ['power-down', 'acked'], ['power-up', 'acked'], ['power-cycle', 'acked'],
    ]);
  });

  describe('failures', () => {
    afterEach(async () => {
      if ((await lab.nic('nic-1')).link === 'down') await lab.host('nic-1', 'cable-plug');
    });

    it('NIC cable pulled: ping --timeout 600 fails in time with one E_TIMEOUT line and exit 1', async () => {
      await lab.host('nic-1', 'cable-pull');
      const t0 = Date.now();
      const r = await lab.run(['ping', 'nic-1', '--timeout', '600']);
      const took = Date.now() - t0;
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.ok(oneLine(r.stderr), r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_TIMEOUT: no answer from nic-1 \(127\.[\d.]+:664\) to presence-ping after \d+ attempts in 600 ms/);
      assert.ok(took < 5000, `took ${took} ms`);
      assert.ok((await lab.nic('nic-1')).counters.dropped.link_down >= 1);
    });

    // A CLI run syncs with the NIC before it sends anything (wire/sync-frame.ts): with the cable pulled the sync gets
    // no answer, so the command never left the station, and the log says so: 'failed' (it did not run), not 'unknown'.
    it('NIC cable pulled: power-down --json times out, the host is untouched and the log says "failed" (nothing was sent)', async () => {
      await lab.host('nic-1', 'cable-pull');
      const r = await lab.run(['power-down', 'nic-1', '--timeout', '600', '--json']);
      assert.equal(r.code, 1);
      assert.equal(r.json.ok, false);
      assert.equal(r.json.error.code, 'E_TIMEOUT');
      assert.ok(oneLine(r.stderr), r.stderr);
      assert.equal((await lab.nic('nic-1')).host, 'up');
      const log = await lab.station(['log', 'nic-1']);
      assert.deepEqual([log.at(-1).command, log.at(-1).outcome], ['power-down', 'failed']);
    });

    it('after cable-plug the next command works again', async () => {
      const r = await lab.station(['ping', 'nic-1']);
      assert.equal(r.response.type, 'presence-pong');
    });

    it('unknown NIC: one E_NOT_FOUND line telling what to do, exit 1', async () => {
      const r = await lab.run(['ping', 'nic-42']);
      assert.equal(r.code, 1);
      assert.ok(oneLine(r.stderr), r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_NOT_FOUND: .*\bnic-42\b.*(enrol|sa manual)/);
    });

    it('sa manual for a NIC the emulator does not have: one E_NOT_FOUND line, exit 1', async () => {
      const r = await lab.run(['sa', 'manual', 'nic-42']);
      assert.equal(r.code, 1);
      assert.ok(oneLine(r.stderr), r.stderr);
      assert.match(r.stderr, /^mgmt-station: E_NOT_FOUND: no NIC 'nic-42' in this emulator/);
    });

    it('a NIC the emulator has but the station never keyed: E_NOT_FOUND, exit 1', async () => {
      const r = await lab.run(['state', 'nic-2', '--json']);
      assert.equal(r.code, 1);
      assert.equal(r.json.error.code, 'E_NOT_FOUND');
    });

    it('a usage error (missing NIC) exits 2', async () => {
      const r = await lab.run(['ping']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^mgmt-station: E_USAGE: usage: mgmt-station ping TARGET\n$/);
    });
  });
});
