/**
 * ASF alerts over real processes (docs/ALERTS.md; issue 17): the emulator's NIC reports host events to the station
 * daemon that polls it, under the SA on UDP 664; the daemon stores each once and acknowledges it (PET Acknowledge
 * under the SA); `mgmt-station events --follow --json` streams them from the store. Measured: from the control API
 * request that moves the host to the alert's row in the store, and to its line from `events --follow`. A daemon that
 * is stopped (SIGSTOP) while the NIC sends gets the retransmissions queued in its socket: stored once. With tshark
 * (as root), a capture decrypts with the exported keys: the alert dissects as an SNMP trap with the PET, the
 * acknowledgement as RMCP class 7.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Lab, STATION, isRoot, waitFor } from '../support/lab.js';
import { StationDaemon, stopAllStations, withStoreDb, writePskFile } from '../support/station-daemon.js';
import { Capture, espSaOptions, hasBinary, tsharkFields } from '../support/tshark.js';
import { alertSpecific } from '../../wire/pet.js';

interface Followed { at: number; event: string; nic: string; id: number }

function follow(lab: Lab): { child: ChildProcess; lines: Followed[] } {
  const child = spawn(process.execPath, [STATION, 'events', '--follow', '--json', '--store', lab.store, '--cluster-key', lab.keyFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Followed[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    buf += c;
    for (;;) {
      const i = buf.indexOf('\n');
      if (i < 0) break;
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const j = JSON.parse(l);
      lines.push({ at: performance.now(), event: j.event, nic: j.nic, id: j.id });
    }
  });
  return { child, lines };
}

function storedEvents(lab: Lab): { id: number; event: string }[] {
  return withStoreDb(lab, (db) => db.prepare('SELECT id, event FROM alerts ORDER BY id').all() as { id: number; event: string }[]);
}

describe('e2e alerts: NIC -> station daemon -> store -> events --follow', function () {
  this.timeout(90_000);
  let lab: Lab;
  let f: { child: ChildProcess; lines: Followed[] } | null = null;
  let capture: Capture | null = null;
  after(async () => {
    f?.child.kill('SIGKILL');
    capture?.kill();
    await stopAllStations();
    await lab?.cleanup();
  });

  it('hang, power-down, power-up, cable pull and plug: in the store and in events --follow within 1 s, stored once', async () => {
    lab = new Lab('alerts');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
    const nicAddr = (await lab.nic('nic-1')).address;
    if (hasBinary('tshark') && isRoot) capture = await Capture.start(join(lab.dir, 'alerts.pcap'), `udp port 664 and host ${nicAddr}`);
    const d = await StationDaemon.start(lab, ['--poll-interval', '200']);
    await waitFor('the daemon to poll nic-1', async () => (await d.status()).nics.find((n) => n.id === 'nic-1' && n.host === 'S0'), 15_000, 50);
    f = follow(lab);
    // Warm-up, not measured: events --follow is running once it prints the first alert (Node start, store open).
    await lab.host('nic-1', 'suspend');
    await waitFor('events --follow to run', async () => f!.lines.some((l) => l.event === 'sleep'), 15_000, 10);
    await lab.host('nic-1', 'wake');
    await waitFor('the wake alert followed', async () => f!.lines.some((l) => l.event === 'wake'), 5000, 10);
    const figures: { event: string; storeMs: number; followMs: number }[] = [];
    const steps: [string, string][] = [['hang', 'os-hang'], ['power-down', 'power-down'], ['power-up', 'power-up'], ['cable-pull', 'cable-pull'], ['cable-plug', 'cable-plug']];
    for (const [hostEvent, alert] of steps) {
      const before = storedEvents(lab).length;
      const t0 = performance.now();
      await lab.host('nic-1', hostEvent);
      if (hostEvent === 'cable-pull') {
        await new Promise((r) => setTimeout(r, 300)); // nothing can leave while the link is down
        assert.equal(storedEvents(lab).length, before, 'no alert while the cable is out');
        continue;
      }
      const row = await waitFor(`${alert} in the store`, async () => storedEvents(lab).slice(before).find((r) => r.event === alert), 5000, 1);
      const storeMs = performance.now() - t0;
      const line = await waitFor(`${alert} from events --follow`, async () => f!.lines.find((l) => l.id === row.id), 5000, 1);
      const followMs = line.at - t0;
      figures.push({ event: alert, storeMs, followMs });
      assert.ok(storeMs <= 1000, `${alert} stored after ${storeMs.toFixed(1)} ms`);
      assert.ok(followMs <= 1000, `${alert} followed after ${followMs.toFixed(1)} ms`);
      if (hostEvent === 'power-up') await waitFor('the boot', async () => storedEvents(lab).some((r) => r.event === 'os-boot'), 5000, 10);
    }
    const events = storedEvents(lab).map((r) => r.event);
    assert.deepEqual(events, ['sleep', 'wake', 'os-hang', 'power-down', 'power-up', 'os-boot', 'cable-pull', 'cable-plug']);
    console.log(`      alert latency (ms, host event -> store / -> events --follow): ${figures.map((x) => `${x.event} ${x.storeMs.toFixed(1)}/${x.followMs.toFixed(1)}`).join(', ')}`);
    // Every alert acknowledged: nothing left queued at the NIC, nothing sent twice.
    const st = await waitFor('the queue to empty', async () => {
      const n = await lab.nic('nic-1');
      return n.alerts.queued === 0 ? n.alerts : null;
    }, 5000);
    assert.equal(st.counters.acked, 8);
  });

  it('a daemon stopped while the NIC sends: retransmissions wait in its socket; stored once, acknowledged', async () => {
    const daemon = await waitFor('the daemon', async () => (await lab.run(['status', '--json'])).json, 5000);
    const pid = daemon.pid as number;
    process.kill(pid, 'SIGSTOP');
    const before = storedEvents(lab).length;
    try {
      await lab.host('nic-1', 'hang');
      await new Promise((r) => setTimeout(r, 1200)); // first copy, then 250 and 500 ms later
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor('the hang alert stored', async () => storedEvents(lab).slice(before).some((r) => r.event === 'os-hang'), 5000, 10);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(storedEvents(lab).slice(before).map((r) => r.event), ['os-hang'], 'stored once');
    const n = await lab.nic('nic-1');
    assert.ok(n.alerts.counters.retransmitted >= 2, JSON.stringify(n.alerts.counters));
    assert.equal(n.alerts.queued, 0);
  });

  it('tshark decrypts the capture with the exported keys: the alert is an SNMP trap (PET), the acknowledgement RMCP class 7', async function () {
    if (!capture) this.skip(); // needs tshark and root (live capture on lo)
    await capture!.stop();
    capture = null;
    const uat = join(lab.dir, 'esp_sa');
    await lab.run(['keys', '--wireshark', uat]);
    const rows = await tsharkFields(join(lab.dir, 'alerts.pcap'), [
      '-d', 'udp.port==664,udpencap', '-o', 'esp.enable_encryption_decode:TRUE', '-o', 'esp.enable_authentication_check:TRUE',
      ...espSaOptions(readFileSync(uat, 'utf8')), '-Y', '!(frame[42:4] == ff:ff:ff:ff)',
    ], ['frame.number', 'esp.icv_good', 'udp.dstport', 'snmp.enterprise', 'snmp.specific_trap', 'rmcp.class']);
    const traps = rows.filter((r) => r['snmp.specific_trap'] !== '');
    assert.ok(traps.length >= 6, `alerts dissected as SNMP traps: ${JSON.stringify(rows.slice(0, 5))}`);
    for (const t of traps) {
      assert.equal(t['esp.icv_good'], '1');
      assert.equal(t['udp.dstport'].split(',').pop(), '162');
      assert.equal(t['snmp.enterprise'], '1.3.6.1.4.1.3183.1.1');
    }
    assert.ok(traps.some((t) => Number(t['snmp.specific_trap']) === alertSpecific('os-hang')));
    const acks = rows.filter((r) => r['rmcp.class'] === '0x07');
    assert.ok(acks.length >= 6, 'PET Acknowledges under the SA');
    for (const a of acks) assert.equal(a['esp.icv_good'], '1');
  });
});
