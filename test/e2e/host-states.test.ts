/**
 * Issue 2, acceptance 4: in every host state (up, hung, pre-boot, suspend, off) the secure path works — the
 * NIC runs on auxiliary power — so a secure Power Cycle Reset is acknowledged and moves the emulated host
 * as the transition table in firmware/host-state.ts says, and System State reports the host's real S-state
 * (DSP0136 §3.2.4.5: S0 for up, hung and pre-boot, S3 for suspend, S5 for soft-off).
 *
 * One NIC per host state; a long boot delay keeps pre-boot from completing during the test.
 */
import assert from 'node:assert/strict';
import { Lab } from '../support/lab.js';
import { transition, type HostState } from '../../firmware/host-state.js';

const CASES: { nic: string; state: HostState; drive: string[]; sState: number }[] = [
  { nic: 'nic-1', state: 'up', drive: [], sState: 0 },
  { nic: 'nic-2', state: 'hung', drive: ['hang'], sState: 0 },
  { nic: 'nic-3', state: 'pre-boot', drive: ['crash'], sState: 0 },
  { nic: 'nic-4', state: 'suspend', drive: ['suspend'], sState: 3 },
  { nic: 'nic-5', state: 'off', drive: ['power-down'], sState: 5 },
];

describe('e2e: secure power-cycle in every host state', function () {
  this.timeout(30000);
  let lab: Lab;

  before(async () => {
    lab = new Lab('host-states');
    await lab.startEmulator(['--nics', String(CASES.length), '--boot-delay', '60000']);
    for (const c of CASES) await lab.station(['sa', 'manual', c.nic]);
    for (const c of CASES) {
      for (const event of c.drive) {
        const r = await lab.emulatorCli(['host', c.nic, event, '--json']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.json.ok, true);
        assert.equal(r.json.to, c.state);
      }
      assert.equal((await lab.nic(c.nic)).host, c.state);
    }
  });
  after(async () => lab?.cleanup());

  for (const c of CASES) {
    const after = transition(c.state, 'power-cycle').to;

    it(`host ${c.state}: secure System State answered, reporting S${c.sState}`, async () => {
      const r = await lab.station(['state', c.nic]);
      assert.equal(r.response.systemState, c.sState);
      assert.equal((await lab.nic(c.nic)).host, c.state, 'reads do not move the host');
    });

    it(`host ${c.state}: secure power-cycle is acknowledged and moves the host ${c.state} -> ${after}`, async () => {
      const r = await lab.station(['power-cycle', c.nic]);
      assert.equal(r.ok, true);
      assert.equal(r.response.type, 'rmcp-ack');
      const s = await lab.nic(c.nic);
      assert.equal(s.host, after);
      const log = (await lab.control.get<any[]>(`/v1/nics/${c.nic}/exec-log`)).at(-1);
      assert.deepEqual([log.command, log.via, log.hostBefore, log.hostAfter], ['power-cycle', 'secure', c.state, after]);
      // pre-boot is S0 (DSP0136: the machine is working; only the OS is not up yet).
      assert.equal((await lab.station(['state', c.nic])).response.systemState, 0);
    });
  }

  it('nic-emulator host rejects an event that is illegal in the current state with exit 1 (refused, not a usage error) and changes nothing', async () => {
    // nic-5 is in pre-boot now (after its power-cycle): 'hang' is only possible from 'up'.
    const r = await lab.emulatorCli(['host', 'nic-5', 'hang']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^nic-emulator: E_ILLEGAL_TRANSITION: host event 'hang' is not possible in state 'pre-boot'/);
    assert.equal((await lab.nic('nic-5')).host, 'pre-boot');
  });
});
