/**
 * Review M-D2: with the station's daemon up, the verbs that change a NIC's SA or PSK — enroll (one NIC, all),
 * refresh all, sa manual — run in the daemon (the CLI forwards them: one process holds the sequence state, the
 * SAs and the key exchanges; docs/STATION.md), so the daemon's session and key exchange move with them
 * and the next verb through the daemon works. A change made by another process anyway (--no-daemon here; a
 * station on another host alike) is noticed by the daemon: it reloads its session when the store's active SA is
 * not its own, and makes a new key exchange when the stored PSK changed.
 */
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../support/lab.js';
import { nicSa, stopAllStations, StationDaemon, writePskFile, type StationDaemon as Daemon } from '../support/station-daemon.js';

describe('e2e station: enroll, refresh all and sa manual while the daemon runs', function () {
  this.timeout(90000);
  let lab: Lab;
  let daemon: Daemon;

  before(async function () {
    this.timeout(60000);
    lab = new Lab('station-daemon-rekey');
    await lab.startEmulator(['--nics', '4']);
    await lab.station(['enroll', 'all', '--psk-file', writePskFile(lab).file], 30000);
    daemon = await StationDaemon.start(lab, ['--poll-interval', '150']);
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  /** `mgmt-station ARGS` with the daemon up: exit 0, forwarded to it ([via daemon]). */
  async function viaDaemon(args: string[], timeoutMs = 30000): Promise<string> {
    const r = await lab.run(args, { timeoutMs });
    assert.equal(r.code, 0, `mgmt-station ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /\[via daemon\]/, `mgmt-station ${args.join(' ')} ran in the daemon`);
    return r.stdout;
  }

  it('bad requests to the daemon are 400 E_USAGE, never 500: a malformed NIC id, a body that is not an object, a bad psk', async () => {
    const ask = async (path: string, body: string) => {
      const r = await fetch(`http://${daemon.ready.control}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${daemon.control.token}` } });
      return { status: r.status, json: (await r.json()) as { error?: { code: string; message: string } } };
    };
    for (const [path, body, why] of [
      ['/v1/nics/%E0%A4%A/state', '', /malformed percent-encoding/],
      ['/v1/nics/nic-1/enroll', 'null', /must be a JSON object/],
      ['/v1/nics/nic-1/enroll', '{"psk":"zz","emulator":"127.0.0.1:1"}', /psk must be an even number of hex digits/],
      ['/v1/nics/nic-1/enroll', '{"psk":"00","emulator":"127.0.0.1:1"}', /psk is 1 bytes/],
    ] as const) {
      const r = await ask(path, body);
      assert.equal(r.status, 400, `${path} ${body}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error?.code, 'E_USAGE');
      assert.match(r.json.error!.message, why);
    }
  });

  it('enroll NIC with a new PSK, then state and refresh through the daemon work', async () => {
    const out = await viaDaemon(['enroll', 'nic-4', '--psk-file', writePskFile(lab, 'psk2.hex').file]);
    assert.match(out, /^nic-4: enrolled: SA generation \d+ committed/);
    assert.match(await viaDaemon(['state', 'nic-4']), /system state 0/);
    assert.match(await viaDaemon(['refresh', 'nic-4']), /refreshed: SA generation \d+ committed/);
    assert.match(await viaDaemon(['power-up', 'nic-4']), /acknowledged/);
  });

  it('refresh all: 4/4 in the daemon, then every NIC answers through it', async () => {
    const before = await Promise.all(['nic-1', 'nic-2', 'nic-3', 'nic-4'].map(async (n) => (await nicSa(lab, n)).active!.generation));
    assert.match(await viaDaemon(['refresh', 'all']), /^refresh: 4\/4 NICs in .* \[via daemon\]/m);
    for (const [i, n] of ['nic-1', 'nic-2', 'nic-3', 'nic-4'].entries()) {
      const r = await daemon.verb(n, 'state');
      assert.ok(r.generation > before[i], `${n} answers under its new SA (${r.generation} > ${before[i]})`);
    }
  });

  it('enroll all with another PSK, then every NIC refreshes through the daemon', async () => {
    assert.match(await viaDaemon(['enroll', 'all', '--psk-file', writePskFile(lab, 'psk3.hex').file]), /^enroll: 4\/4 NICs/m);
    for (const n of ['nic-1', 'nic-2', 'nic-3', 'nic-4']) assert.equal((await daemon.verb(n, 'refresh')).ok, true);
  });

  it('sa manual NIC, then commands through the daemon use the manual SA', async () => {
    const out = await viaDaemon(['sa', 'manual', 'nic-2']);
    const g = Number(/generation (\d+)/.exec(out)![1]);
    const r = await daemon.verb('nic-2', 'power-up');
    assert.equal(r.generation, g);
  });

  it('another process re-keys the NIC (--no-daemon): the daemon reloads from the store and keeps working', async () => {
    const r = await lab.run(['refresh', 'nic-3', '--no-daemon', '--json'], { timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const g = r.json.generation as number;
    const st = await daemon.verb('nic-3', 'state');
    assert.equal(st.generation, g, 'the daemon sends under the SA the other process committed');
    // A new PSK written by another process: the daemon's next refresh authenticates with it.
    const e = await lab.run(['enroll', 'nic-1', '--no-daemon', '--psk-file', writePskFile(lab, 'psk4.hex').file], { timeoutMs: 30000 });
    assert.equal(e.code, 0, e.stderr);
    assert.equal((await daemon.verb('nic-1', 'refresh')).ok, true);
    await waitFor('the daemon polls nic-1 without error', async () => {
      const s = await daemon.status();
      return s.nics.find((n) => n.id === 'nic-1' && n.lastError === null && n.host === 'S0');
    }, 5000);
  });
});
