/**
 * The NIC firmware core driven without sockets or clocks: a station-side SaEndpoint talks to a NicFirmware
 * over byte arrays, on an in-memory EEPROM. DESIGN §2.1-2.2, §2.6; issue 2 criteria 4, 5, 7.
 */
import assert from 'node:assert/strict';
import { prng } from '../support/prng.js';
import { MemoryEepromDevice } from '../../firmware/eeprom-device.js';
import { EepromImage, EEPROM_SIZE, type NicConfig } from '../../firmware/eeprom-image.js';
import { SaDatabase } from '../../firmware/sa-database.js';
import { SecureChannel } from '../../firmware/secure-channel.js';
import { NicFirmware, CLEAR_COMMAND_BIT, type FirmwareEffect as NicEffect, type FirmwareState } from '../../firmware/nic-firmware.js';
import type { CommandIdentity } from '../../wire/sync-frame.js';
import { SaEndpoint } from '../../wire/sa-endpoint.js';
import { encodeRmcpAsf, decodeRmcpAsf, type AsfMessage } from '../../wire/asf.js';
import { decodeInnerUdp, encodeInnerUdp } from '../../wire/esp.js';
import { transition, HOST_STATES, type HostState } from '../../firmware/host-state.js';
import type { SaPair, SecurityPolicy } from '../../wire/sa.js';

const NIC = { address: '127.0.1.1', port: 664 };
const STATION = { address: '127.0.0.1', port: 40000 };

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff);
}

function testSa(policy: SecurityPolicy = 'esp', generation = 0): SaPair {
  const ah = policy === 'esp+ah';
  return {
    generation, transform: 'aes-gcm-16', esn: false, policy, origin: 'manual',
    toNic: { spi: 0x1001, encKey: bytes(20, 1), ahSpi: ah ? 0x4001 : 0, ahKey: ah ? bytes(32, 2) : new Uint8Array(0) },
    fromNic: { spi: 0x2002, encKey: bytes(20, 3), ahSpi: ah ? 0x4002 : 0, ahKey: ah ? bytes(32, 4) : new Uint8Array(0) },
  };
}

const CONFIG: NicConfig = { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' };

class Rig {
  dev = new MemoryEepromDevice(EEPROM_SIZE);
  image: EepromImage;
  db!: SaDatabase;
  fw!: NicFirmware;
  station!: SaEndpoint;
  hostState: HostState = 'up';
  /** The commands run (a station SaEndpoint's default IV, the sequence number, carries sync epoch 0: live here). */
  ran = new Set<string>();
  state: FirmwareState = { firstEpoch: (id) => id.epoch, executed: (id) => this.ran.has(idKey(id)), cancelled: () => false };

  constructor(policy: SecurityPolicy = 'esp', config: NicConfig = CONFIG) {
    this.image = EepromImage.format(this.dev, 'nic-1', config);
    this.boot();
    const sa = { ...testSa(policy), generation: this.db.nextGeneration() };
    this.db.writePending(sa);
    this.db.commitPending();
    this.syncEpochZero();
    this.station = new SaEndpoint(sa, 'station', { outStart: 1n, inFloor: 0n });
  }

  channel!: SecureChannel;

  /** Make sync epoch 0 live, as a SET would (nic-sync.ts), for the SA this NIC holds: above its restart floor. */
  syncEpochZero(): void {
    const a = this.db.active;
    if (a) this.channel.addEpoch(0, a.generation, this.db.inboundFloor(a.generation), 0, true);
  }

  /** Power the NIC on from its EEPROM, as after a restart. */
  boot(): void {
    this.image = EepromImage.load(this.dev, 'test.eeprom');
    this.db = new SaDatabase(this.image);
    const img = this.image;
    this.ran = new Set();
    this.channel = new SecureChannel(this.db, NIC);
    this.fw = new NicFirmware(this.channel, () => ({ clearManagement: img.config.clearManagement, allowedClearCommands: img.config.allowedClearCommands }), this.state);
    this.syncEpochZero();
    this.fw.hostState = this.hostState;
  }

  seal(msg: AsfMessage, rmcpSeq = 0xff): Uint8Array {
    return this.station.seal(encodeInnerUdp(STATION.port, 623, encodeRmcpAsf(rmcpSeq, msg)), { srcAddr: STATION.address, srcPort: STATION.port, dstAddr: NIC.address, dstPort: NIC.port });
  }

  /**
   * Deliver a secure datagram; apply host commands like the emulator does; return decoded answers. The liveness
   * note every accepted station packet carries ('station-packet', for the heartbeat monitor) is left out.
   */
  secure(datagram: Uint8Array): { answers: ReturnType<typeof decodeRmcpAsf>[]; effects: NicEffect[] } {
    const effects = this.fw.receiveSecure(STATION, datagram).filter((e) => e.kind !== 'station-packet');
    const answers = [];
    for (const e of effects) {
      if (e.kind === 'send') {
        const opened = this.station.open(e.bytes, { srcAddr: NIC.address, srcPort: NIC.port, dstAddr: STATION.address, dstPort: STATION.port });
        answers.push(decodeRmcpAsf(decodeInnerUdp(opened.payload).body));
      }
      if (e.kind === 'host-command') {
        if (e.identity) this.ran.add(idKey(e.identity));
        this.hostState = transition(this.hostState, e.command).to;
        this.fw.hostState = this.hostState;
      }
    }
    return { answers, effects };
  }
}

function idKey(id: CommandIdentity & { firstEpoch: number }): string {
  return `${id.firstEpoch}:${id.rmcpSeq}:${id.tag}:${id.type}`;
}

/** A copy of a datagram with its last byte (in the ICV) changed. */
function flipLast(d: Uint8Array): Uint8Array {
  const c = d.slice();
  c[c.length - 1] ^= 1;
  return c;
}

describe('NIC firmware core (no sockets, no clocks)', () => {
  it('answers a secure Presence Ping with a Pong under the same SA (DESIGN §2.2)', () => {
    const rig = new Rig();
    const { answers } = rig.secure(rig.seal({ type: 'presence-ping', tag: 7 }));
    assert.equal(answers.length, 1);
    assert.equal(answers[0].asf?.type, 'presence-pong');
    assert.equal(answers[0].asf?.tag, 7);
    assert.equal(rig.fw.counters.accepted.secure, 1);
  });

  for (const policy of ['esp', 'esp+ah'] as const) {
    it(`accepts a secure power-cycle in every host state and moves the host as ASF says (${policy})`, () => {
      for (const start of HOST_STATES) {
        const rig = new Rig(policy);
        rig.hostState = start;
        rig.fw.hostState = start;
        const { answers, effects } = rig.secure(rig.seal({ type: 'power-cycle', tag: 1, bootOptions: null }, 3));
        assert.deepEqual(answers.map((a) => a.rmcp.ack), [true], `${start}: one RMCP ACK ${JSON.stringify(rig.fw.counters)} ${rig.fw.lastInternalError}`);
        assert.equal(answers[0].rmcp.sequence, 3);
        assert.ok(effects.some((e) => e.kind === 'host-command' && e.command === 'power-cycle'), `${start}: executed`);
        assert.equal(rig.hostState, 'pre-boot', `${start} -> pre-boot`);
      }
    });
  }

  for (const policy of ['esp', 'esp+ah'] as const) {
    it(`prepareNext() between packets changes no answer byte, whatever comes next (${policy})`, () => {
      const plain = new Rig(policy);
      const prepared = new Rig(policy);
      const sent: Uint8Array[] = [];
      for (let i = 0; i < 40; i++) {
        const msg: AsfMessage = i % 3 === 0 ? { type: 'presence-ping', tag: i } : i % 3 === 1 ? { type: 'system-state-request', tag: i } : { type: 'capabilities-request', tag: i };
        sent.push(plain.seal(msg, i % 5 === 0 ? i : 0xff));
      }
      // In order, then out of order (a gap, an older one), a replay, a tampered packet, and the rest.
      const order = [0, 1, 2, 3, 5, 4, 7, 6, 6, 9, 8, ...Array.from({ length: 30 }, (_, k) => 10 + k)];
      for (const [step, k] of order.entries()) {
        const d = step === 20 ? flipLast(sent[k]) : sent[k];
        const a = plain.fw.receiveSecure(STATION, d);
        const b = prepared.fw.receiveSecure(STATION, d);
        prepared.fw.prepareNext();
        assert.deepEqual(b, a, `step ${step} (packet ${k})`);
      }
      assert.deepEqual(prepared.fw.counters, plain.fw.counters);
      assert.ok(plain.fw.counters.dropped.replay === 1 && (plain.fw.counters.dropped.icv ?? 0) + (plain.fw.counters.dropped.ah_icv ?? 0) === 1, JSON.stringify(plain.fw.counters));
    });
  }

  it('reports the host S-state truthfully in System State (DSP0136 §3.2.4.5)', () => {
    const expected: Record<HostState, number> = { up: 0, hung: 0, 'pre-boot': 0, suspend: 3, off: 5 };
    for (const s of HOST_STATES) {
      const rig = new Rig();
      rig.fw.hostState = s;
      const a = rig.secure(rig.seal({ type: 'system-state-request', tag: 2 })).answers[0].asf!;
      assert.equal(a.type, 'system-state-response');
      assert.equal((a as { systemState: number }).systemState, expected[s], s);
    }
  });

  it('drops a replayed datagram, also after a restart from the EEPROM (DESIGN §2.6)', () => {
    const rig = new Rig();
    const captured = rig.seal({ type: 'reset', tag: 1, bootOptions: null }, 9);
    assert.equal(rig.secure(captured).answers.length, 1);
    rig.secure(captured);
    assert.equal(rig.fw.counters.dropped.replay, 1);
    rig.boot(); // power cycle of the NIC: RAM gone, EEPROM kept
    assert.equal(rig.secure(captured).answers.length, 0);
    assert.equal(rig.fw.counters.dropped.replay, 1, 'rejected by the restart floor');
  });

  it('an idle NIC drops its per-key crypto tables (releaseIdle) and rebuilds them on the next packet: answers, counters and replay windows unchanged', () => {
    const rig = new Rig();
    const first = rig.seal({ type: 'presence-ping', tag: 1 });
    assert.equal(rig.secure(first).answers.length, 1);
    const now = Date.now();
    assert.equal(rig.channel.releaseIdle(now, 60_000), true, 'tables held since the packet: dropped');
    assert.equal(rig.channel.releaseIdle(now, 60_000), false, 'nothing left to drop');
    // The station's answers go on in sequence (the NIC's outbound counter is the SA database's, not the tables').
    for (let tag = 2; tag < 5; tag++) {
      const { answers } = rig.secure(rig.seal({ type: 'presence-ping', tag }));
      assert.deepEqual(answers.map((x) => x.asf?.tag), [tag]);
      rig.channel.releaseIdle(Date.now() + 120_000, 60_000);
    }
    rig.secure(first); // the windows stayed with their epoch: still a replay
    assert.equal(rig.fw.counters.dropped.replay, 1);
    assert.equal(rig.fw.counters.accepted.secure, 4);
  });

  it('answers a retransmitted command from its response cache without executing it twice (DESIGN §5)', () => {
    const rig = new Rig();
    const first = rig.secure(rig.seal({ type: 'power-down', tag: 4 }, 12));
    const again = rig.secure(rig.seal({ type: 'power-down', tag: 4 }, 12)); // same RMCP seq + tag, new ESP seq
    assert.equal(first.effects.filter((e) => e.kind === 'host-command').length, 1);
    assert.equal(again.effects.filter((e) => e.kind === 'host-command').length, 0);
    assert.deepEqual(again.answers.map((a) => a.rmcp.ack), [true]);
    assert.equal(rig.fw.counters.duplicatesAnswered, 1);
  });

  it('drops wrong-key, truncated, bit-flipped and unknown-SPI datagrams, counted by reason', () => {
    const rig = new Rig();
    const good = rig.seal({ type: 'presence-ping', tag: 1 });
    const flipped = good.slice();
    flipped[20] ^= 1;
    rig.secure(flipped);
    rig.secure(good.subarray(0, 10));
    const other = new SaEndpoint({ ...testSa(), toNic: { ...testSa().toNic, encKey: bytes(20, 99) } }, 'station', { outStart: 1n, inFloor: 0n });
    rig.secure(other.seal(encodeInnerUdp(1, 623, encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 1 })), { srcAddr: STATION.address, srcPort: STATION.port, dstAddr: NIC.address, dstPort: NIC.port }));
    const unknown = good.slice();
    unknown[0] ^= 0x40;
    rig.secure(unknown);
    assert.deepEqual(rig.fw.counters.dropped, { icv: 2, short: 1, spi: 1 });
    assert.equal(rig.secure(good).answers.length, 1, 'the good packet still works after the garbage');
  });

  it('refuses clear power commands by default, honours only the configured subset (DESIGN §2.1)', () => {
    const clear = (rig: Rig, msg: AsfMessage, seq = 5) => rig.fw.receiveClear(STATION, encodeRmcpAsf(seq, msg));
    const def = new Rig();
    const e1 = clear(def, { type: 'reset', tag: 1, bootOptions: null });
    assert.ok(!e1.some((e) => e.kind === 'host-command'));
    assert.equal(def.fw.counters.refusedClear, 1);
    assert.ok(e1.some((e) => e.kind === 'send'), 'still ACKed (ASF: acknowledge, then disregard)');
    const pong = clear(def, { type: 'presence-ping', tag: 3 }, 0xff).find((e) => e.kind === 'send');
    assert.equal(pong && pong.kind === 'send' ? pong.bytes.length : 0, 28, 'presence ping always answered with a 28-byte pong');

    const cfg = { ...CONFIG, clearManagement: true, allowedClearCommands: CLEAR_COMMAND_BIT['power-cycle'] };
    const some = new Rig('esp', cfg);
    assert.ok(clear(some, { type: 'power-cycle', tag: 1, bootOptions: null }).some((e) => e.kind === 'host-command'));
    assert.ok(!clear(some, { type: 'reset', tag: 2, bootOptions: null }).some((e) => e.kind === 'host-command'));
    assert.equal(some.fw.counters.refusedClear, 1);
  });

  it('survives 20,000 mutated datagrams on both ports without a state change or an internal error', () => {
    const rig = new Rig();
    const good = [rig.seal({ type: 'presence-ping', tag: 1 }), encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 1 })];
    const random = prng(0x12345678);
    const rnd = () => random.int(256);
    const before = JSON.stringify(rig.db.summary());
    for (let i = 0; i < 20000; i++) {
      const base = good[i & 1];
      const m = i % 4 === 0 ? Uint8Array.from({ length: rnd() % 80 }, rnd) : base.slice(0, Math.max(1, base.length - (rnd() % 8)));
      if (m.length) m[rnd() % m.length] ^= 1 << (rnd() % 8);
      if (i & 1) rig.fw.receiveClear(STATION, m);
      else rig.fw.receiveSecure(STATION, m);
    }
    assert.equal(rig.fw.counters.dropped.internal ?? 0, 0, rig.fw.lastInternalError ?? '');
    assert.equal(JSON.stringify(rig.db.summary()), before);
    assert.equal(rig.hostState, 'up');
  });

  describe('RMCP ACK for every message whose RMCP header decodes and whose sequence is not 0xFF (DSP0136 §3.2.2.1, p.19)', () => {
    /** RMCP header (version 06h, sequence, class) + the 8-byte ASF header (IANA 4542, type, tag, length 0). */
    const raw = (seq: number, cls: number, type = 0x80): Uint8Array => Uint8Array.from([0x06, 0x00, seq, cls, 0x00, 0x00, 0x11, 0xbe, type, 0x01, 0x00, 0x00]);
    const sends = (effects: NicEffect[]) => effects.filter((e): e is Extract<NicEffect, { kind: 'send' }> => e.kind === 'send');
    const cases: [string, number, number, string][] = [
      ['an unknown ASF message type 99h', 0x06, 0x99, 'type'],
      ['RAKP Message 1 (C0h), not served here', 0x06, 0xc0, 'type'],
      ['an IPMI-class message', 0x07, 0x80, 'class'],
      ['an OEM-class message on the clear port', 0x08, 0x80, 'class'],
    ];

    for (const [what, cls, type, reason] of cases) {
      it(`clear, sequence 05h: ${what} is ACKed (06 00 05 ${(0x80 | cls).toString(16)}), then disregarded and counted as '${reason}'`, () => {
        const rig = new Rig();
        const effects = rig.fw.receiveClear(STATION, raw(5, cls, type));
        assert.deepEqual(sends(effects).map((e) => [...e.bytes]), [[0x06, 0x00, 0x05, 0x80 | cls]]);
        assert.equal(effects.length, 1, 'nothing but the ACK');
        assert.equal(rig.fw.counters.dropped[reason], 1);
        assert.equal(rig.fw.counters.acksSent, 1);
        assert.equal(rig.fw.counters.accepted.clear, 0);
      });

      it(`clear, sequence FFh: ${what} gets no ACK and is counted as '${reason}'`, () => {
        const rig = new Rig();
        assert.deepEqual(rig.fw.receiveClear(STATION, raw(0xff, cls, type)), []);
        assert.equal(rig.fw.counters.dropped[reason], 1);
        assert.equal(rig.fw.counters.acksSent, 0);
      });

      it(`secure, sequence 05h: ${what} inside an authenticated ESP packet is ACKed under the same SA`, () => {
        const rig = new Rig();
        const datagram = rig.station.seal(encodeInnerUdp(STATION.port, 623, raw(5, cls, type)), { srcAddr: STATION.address, srcPort: STATION.port, dstAddr: NIC.address, dstPort: NIC.port });
        const { answers, effects } = rig.secure(datagram);
        assert.equal(effects.length, 1, 'nothing but the ACK');
        assert.equal(answers.length, 1);
        assert.deepEqual(answers[0].rmcp, { version: 6, sequence: 5, messageClass: cls, ack: true });
        assert.equal(answers[0].asf, null);
        const expected = cls === 0x08 ? 'length' : reason; // inside ESP an OEM message must be an owner notice
        assert.equal(rig.fw.counters.dropped[expected], 1, JSON.stringify(rig.fw.counters.dropped));
        assert.equal(rig.fw.counters.acksSent, 1);
        assert.equal(rig.fw.counters.accepted.secure, 0);
      });

      it(`secure, sequence FFh: ${what} gets no ACK`, () => {
        const rig = new Rig();
        const datagram = rig.station.seal(encodeInnerUdp(STATION.port, 623, raw(0xff, cls, type)), { srcAddr: STATION.address, srcPort: STATION.port, dstAddr: NIC.address, dstPort: NIC.port });
        assert.deepEqual(rig.secure(datagram).effects, []);
        assert.equal(rig.fw.counters.acksSent, 0);
      });
    }

    it('a truncated ASF body after a good RMCP header is ACKed and counted as short', () => {
      const rig = new Rig();
      const effects = rig.fw.receiveClear(STATION, raw(7, 0x06).subarray(0, 6));
      assert.deepEqual(sends(effects).map((e) => [...e.bytes]), [[0x06, 0x00, 0x07, 0x86]]);
      assert.equal(rig.fw.counters.dropped.short, 1);
    });

    it('no ACK when the RMCP header itself does not decode (version 05h, reserved class 09h) or is an ACK', () => {
      const rig = new Rig();
      const badVersion = raw(5, 0x06);
      badVersion[0] = 0x05;
      assert.deepEqual(rig.fw.receiveClear(STATION, badVersion), []);
      assert.deepEqual(rig.fw.receiveClear(STATION, raw(5, 0x09)), []);
      assert.deepEqual(rig.fw.receiveClear(STATION, Uint8Array.from([0x06, 0x00, 0x05, 0x86])), []);
      assert.equal(rig.fw.counters.acksSent, 0);
      assert.equal(rig.fw.counters.dropped.version, 1);
      assert.equal(rig.fw.counters.dropped.class, 1);
    });

    it('an RMCP ACK received (a station acknowledging an answer) is counted in acksReceived, by port, and answered with nothing', () => {
      const rig = new Rig();
      for (let i = 0; i < 3; i++) assert.deepEqual(rig.fw.receiveClear(STATION, Uint8Array.from([0x06, 0x00, i, 0x86])), []);
      const ack = rig.station.seal(encodeInnerUdp(STATION.port, 623, Uint8Array.from([0x06, 0x00, 0x09, 0x86])), { srcAddr: STATION.address, srcPort: STATION.port, dstAddr: NIC.address, dstPort: NIC.port });
      assert.deepEqual(rig.secure(ack).answers, []);
      assert.deepEqual(rig.fw.counters.acksReceived, { clear: 3, secure: 1 });
      assert.deepEqual(rig.fw.counters.accepted, { clear: 0, secure: 0 });
      assert.deepEqual(rig.fw.counters.dropped, {});
    });

    it('a secure packet failing its ICV is never ACKed', () => {
      const rig = new Rig();
      const datagram = rig.station.seal(encodeInnerUdp(STATION.port, 623, raw(5, 0x07)), { srcAddr: STATION.address, srcPort: STATION.port, dstAddr: NIC.address, dstPort: NIC.port });
      assert.deepEqual(rig.secure(flipLast(datagram)).effects, []);
      assert.equal(rig.fw.counters.acksSent, 0);
    });
  });
});
