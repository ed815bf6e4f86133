/**
 * The station polls for a NIC's answer while a request is in flight (lib/answer-poll.ts, `--busy-poll-us`, on by
 * default): answers still arrive, the daemon's status shows how polling went, `--busy-poll-us 0` never polls, and
 * a bad value is a usage error.
 */
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, sleep, stopAllStations, writePskFile } from '../support/station-daemon.js';

describe('e2e station: polling for answers (--busy-poll-us)', function () {
  this.timeout(40000);
  let lab: Lab;
  before(async () => {
    lab = new Lab('station-busy-poll');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  it('by default the daemon polls up to 200 µs for each answer a verb awaits: 50 pings answered, counted in status', async () => {
    const d = await StationDaemon.start(lab, ['--poll-interval', '200']);
    try {
      // The daemon's own System State polls (every 200 ms here) are awaited by nobody: they do not poll.
      await waitFor('the first poll', async () => (await d.status()).nics.find((n) => n.host === 'S0'), 5000, 100);
      await sleep(700);
      assert.deepEqual((await d.status()).busyPoll, { maxUs: 200, hits: 0, misses: 0, backoffs: 0 });
      for (let i = 0; i < 50; i++) assert.equal((await d.verb('nic-1', 'ping')).response.type, 'presence-pong');
      const { busyPoll } = await d.status();
      assert.ok(busyPoll, 'status shows busyPoll once the socket is open');
      assert.equal(busyPoll.maxUs, 200);
      // Each ping is settled while polling (a hit) or its window ran out first (a miss: a NIC slower than 200 µs).
      assert.ok(busyPoll.hits + busyPoll.misses >= 50, JSON.stringify(busyPoll));
    } finally {
      await stopAllStations();
    }
  });

  it('--busy-poll-us 5000: answers are read while polling (hits)', async () => {
    const d = await StationDaemon.start(lab, ['--busy-poll-us', '5000']);
    try {
      for (let i = 0; i < 20; i++) assert.equal((await d.verb('nic-1', 'ping')).response.type, 'presence-pong');
      const { busyPoll } = await d.status();
      assert.equal(busyPoll?.maxUs, 5000);
      assert.ok(busyPoll.hits > 0, `no answer read while polling: ${JSON.stringify(busyPoll)}`);
    } finally {
      await stopAllStations();
    }
  });

  it('--busy-poll-us 0: answers as before, never polls', async () => {
    const d = await StationDaemon.start(lab, ['--busy-poll-us', '0']);
    try {
      for (let i = 0; i < 20; i++) assert.equal((await d.verb('nic-1', 'state')).response.type, 'system-state-response');
      assert.deepEqual((await d.status()).busyPoll, { maxUs: 0, hits: 0, misses: 0, backoffs: 0 });
    } finally {
      await stopAllStations();
    }
    const local = await lab.station(['ping', 'nic-1', '--busy-poll-us', '0']);
    assert.equal(local.response.type, 'presence-pong', 'the CLI without a daemon too');
  });

  for (const bad of ['-1', '1.5', '100001', 'fast']) {
    it(`--busy-poll-us ${bad}: E_USAGE (exit 2), nothing opened`, async () => {
      const r = await lab.run(['ping', 'nic-1', `--busy-poll-us=${bad}`]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--busy-poll-us must be a whole number 0\.\.100000, got/);
    });
  }
});
