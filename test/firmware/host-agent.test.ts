/**
 * The NIC's host agent (firmware/host-agent.ts) with issue 15's IKE: it hands the responder each datagram's source
 * (the §2.6 cookie, the per-source limit) and sends every datagram where the responder says (§2.11); with a Lifeline
 * station the two-phase commit runs, with a standard peer (no N(COMMIT_SUPPORTED)) the SA is written and committed
 * in the NIC's EEPROM before the exchange is answered; an IKE SA rekey by the peer is counted; a spoofed
 * IKE_SA_INIT flood costs no DH past the cookie threshold and shows in the agent's status. Pure: virtual time,
 * seeded randomness, an in-memory EEPROM.
 */
import assert from 'node:assert/strict';
import { MemoryEepromDevice } from '../../firmware/eeprom-device.js';
import { EEPROM_SIZE, EepromImage, type NicConfig } from '../../firmware/eeprom-image.js';
import { HostAgent, type AgentOutput, type Endpoint } from '../../firmware/host-agent.js';
import { SaDatabase } from '../../firmware/sa-database.js';
import { IkeInitiator, type IkeEffect } from '../../protocol/index.js';
import { DH_CURVE25519, EXCHANGE, PAYLOAD } from '../../protocol/ike/constants.js';
import { x25519PublicKey } from '../../protocol/ike/ike-crypto.js';
import { encodeMessage } from '../../protocol/ike/ike-message.js';
import { encodeKe, encodeNonce } from '../../protocol/ike/ike-payloads.js';
import { ikeOffer } from '../../protocol/ike/proposals.js';
import { encodeSa } from '../../protocol/ike/sa-payload.js';
import { seededRandom } from '../protocol/helpers/prng.js';

const PSK = new Uint8Array(32).fill(7);
const config: NicConfig = { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'psk', key: PSK }, clusterPolicy: '' };
const STATION: Endpoint = { address: '127.0.0.1', port: 40500 };

/** One NIC's host agent and a station's IkeInitiator, datagrams delivered at once, time advanced by hand. */
class Lab {
  readonly db = new SaDatabase(EepromImage.format(new MemoryEepromDevice(EEPROM_SIZE), 'nic-1', config));
  readonly agent = new HostAgent({ nicId: 'nic-1', random: seededRandom('agent'), db: () => this.db, psk: () => PSK, policy: () => 'esp' });
  readonly station: IkeInitiator;
  readonly out: AgentOutput[] = [];
  readonly stationFx: IkeEffect[] = [];
  now = 0;

  constructor(commitExtension = true, seed = 'station') {
    this.station = new IkeInitiator({ random: seededRandom(seed), psk: PSK, id: 'station-1.station.lifeline', peerId: 'nic-1.host.lifeline', commitExtension });
  }

  /** Station effects: datagrams go to the agent from STATION; the rest is kept. */
  fromStation(fx: IkeEffect[]): void {
    for (const e of fx) {
      if (e.kind === 'send') this.toStation(this.agent.receive(e.bytes, STATION, this.now));
      else this.stationFx.push(e);
    }
  }

  toStation(o: AgentOutput): void {
    this.out.push(o);
    for (const s of o.sends) if (s.to.address === STATION.address && s.to.port === STATION.port) this.fromStation(this.station.receive(s.bytes, this.now));
  }

  count(kind: IkeEffect['kind']): number {
    return this.stationFx.filter((e) => e.kind === kind).length;
  }
}

function spoofedInit(r: (n: number) => Uint8Array): Uint8Array {
  const payloads = [encodeSa(ikeOffer()), encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(r(32))), encodeNonce(r(32))];
  return encodeMessage({ spiI: r(8), spiR: new Uint8Array(8), exchange: EXCHANGE.IKE_SA_INIT, initiator: true, response: false, messageId: 0 }, payloads);
}

describe('host agent (firmware/host-agent.ts): issue 15 IKE', () => {
  it('a Lifeline station: two-phase commit, every datagram back to the station', () => {
    const lab = new Lab();
    lab.fromStation(lab.station.connect(0));
    assert.equal(lab.count('switch-outbound'), 1);
    assert.equal(lab.db.active?.generation, 1);
    assert.ok(lab.out.flatMap((o) => o.sends).every((s) => s.to.port === STATION.port && s.to.address === STATION.address));
    assert.ok(lab.out.some((o) => o.committed));
  });

  it('a standard peer (no COMMIT_SUPPORTED): the SA is in the EEPROM, committed, before the IKE_AUTH answer leaves; no SA_READY is sent', () => {
    const lab = new Lab(false);
    lab.fromStation(lab.station.connect(0));
    assert.equal(lab.station.commitMode, false);
    assert.equal(lab.count('switch-outbound'), 1);
    assert.equal(lab.db.active?.generation, 1);
    assert.equal(lab.db.pending, null);
    assert.equal(lab.out.flatMap((o) => o.sends).length, 2, 'the IKE_SA_INIT and IKE_AUTH answers only: no SA_READY');
    // The peer rekeys the Child SA (plain): written and committed again, the old one kept as previous.
    lab.fromStation(lab.station.refresh(1));
    assert.equal(lab.db.active?.generation, 2);
    assert.equal(lab.count('switch-outbound'), 2);
  });

  it('an IKE SA rekey by the peer (§2.18) is counted; the NIC\'s SA is untouched and the next refresh runs on the new IKE SA', () => {
    const lab = new Lab();
    lab.fromStation(lab.station.connect(0));
    lab.fromStation(lab.station.rekeyIkeSa(1));
    assert.equal(lab.count('ike-rekeyed'), 1);
    assert.equal((lab.agent.status(true, 1) as { ikeRekeys: number }).ikeRekeys, 1);
    assert.equal(lab.db.active?.generation, 1);
    lab.fromStation(lab.station.refresh(2));
    assert.equal(lab.db.active?.generation, 2);
  });

  it('a spoofed IKE_SA_INIT flood: cookies past the threshold, no DH for them, SA_READY retransmitted to the station and not to a spoofer; counted in status', () => {
    const lab = new Lab(true, 'station-flood');
    const attacker = seededRandom('spoofer');
    for (let i = 0; i < 300; i++) {
      const from = { address: `10.9.${attacker(1)[0]}.${attacker(1)[0]}`, port: 500 };
      const o = lab.agent.receive(spoofedInit(attacker), from, i);
      assert.ok(o.sends.every((s) => s.to === from || (s.to.address === from.address && s.to.port === from.port)), 'answers go to the datagram\'s source');
    }
    lab.now = 300;
    // The station's IKE_SA_INIT is answered with a cookie, it repeats it, and gets in; SA_READY is held back
    // from the station here (its reply is lost) so that the agent retransmits it.
    const init = lab.station.connect(lab.now).filter((e) => e.kind === 'send') as { bytes: Uint8Array }[];
    const cookie = lab.agent.receive(init[0].bytes, STATION, lab.now);
    assert.equal(cookie.sends.length, 1);
    lab.toStation(cookie);
    assert.equal(lab.count('switch-outbound'), 1, 'the station got its SA during the flood');
    const st = lab.agent.status(true, lab.now) as { flood: { dhComputations: number; cookiesSent: number; cookieMode: boolean }; drops: Record<string, number> };
    assert.ok(st.flood.dhComputations <= 5, `DH computations ${st.flood.dhComputations}`);
    assert.ok(st.flood.cookiesSent >= 296, `cookies ${st.flood.cookiesSent}`);
    assert.equal(st.flood.cookieMode, true);
    assert.ok((st.drops['cookie-required'] ?? 0) >= 296);
    // A refresh whose SA_READY the station does not hear: the retransmission goes to the station.
    const req = lab.station.refresh(lab.now).filter((e) => e.kind === 'send') as { bytes: Uint8Array }[];
    lab.agent.receive(req[0].bytes, STATION, lab.now); // answer and SA_READY lost on the way
    lab.agent.receive(spoofedInit(attacker), { address: '10.9.9.9', port: 500 }, lab.now + 1);
    const at = lab.agent.pollTimeout() as number;
    const again = lab.agent.handleTimeout(at);
    assert.ok(again.sends.length >= 1);
    for (const s of again.sends) assert.deepEqual(s.to, STATION);
  });

  it('status keeps the flood counters across an agent reset (the OS went down and came up)', () => {
    const lab = new Lab();
    const attacker = seededRandom('spoofer-2');
    for (let i = 0; i < 20; i++) lab.agent.receive(spoofedInit(attacker), { address: '10.1.1.1', port: 500 }, i);
    const before = (lab.agent.status(true, 20) as { flood: { cookiesSent: number } }).flood.cookiesSent;
    assert.ok(before > 0);
    lab.agent.reset();
    assert.equal((lab.agent.status(false) as { flood: { cookiesSent: number } }).flood.cookiesSent, before);
  });

  it('a new trust anchor (re-enrolment) while the OS runs: each IKE SA gets a D(IKE) (§1.4.1), sent to its station; the NIC keeps its SA', () => {
    const lab = new Lab();
    lab.fromStation(lab.station.connect(0));
    const bye = lab.agent.shutdown(1);
    assert.equal(bye.sends.length, 1);
    assert.deepEqual(bye.sends[0].to, STATION);
    lab.toStation(bye);
    assert.equal(lab.count('closed'), 1);
    assert.equal(lab.station.state, 'closed');
    assert.equal(lab.db.active?.generation, 1);
    assert.deepEqual((lab.agent.status(true, 1) as { sessions: string[] }).sessions, []);
  });
});
