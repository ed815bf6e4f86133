import assert from 'node:assert/strict';
import { prng } from '../support/prng.js';
import { ProtocolError, UsageError } from '../../common/errors.js';
import { fromHex, hex } from '../../common/bytes.js';
import { RMCP_CLASS_ASF, RMCP_CLASS_IPMI } from '../../wire/rmcp.js';
import {
  ASF_IANA,
  ASF_TYPE_CODE,
  CAP_POWER_CYCLE_ANY_PORT,
  CAP_POWER_DOWN_ANY_PORT,
  CAP_POWER_UP_ANY_PORT,
  CAP_RESET_ANY_PORT,
  G3_MECHANICAL_OFF,
  S0_WORKING,
  S3,
  S5_SOFT_OFF,
  SPECIAL_FORCE_PXE,
  UNKNOWN,
  asfTypeName,
  decodeAsf,
  decodeRmcpAsf,
  encodeAsf,
  encodeRmcpAsf,
  presencePong,
  type AsfMessage,
  type BootOptions,
} from '../../wire/asf.js';

function rejects(code: string, fn: () => unknown, messageIncludes?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (messageIncludes !== undefined) assert.ok(e.message.includes(messageIncludes), e.message);
    return true;
  });
}

const NO_OPTIONS: BootOptions = { iana: ASF_IANA, specialCommand: 0, specialCommandParam: 0, bootOptionsMask: 0, oemParams: 0 };

/**
 * The 11 good frames of reference/tshark/asf_pcap.py, as tshark 4.0.17 dissected them
 * (README §1: rmcp.version 0x06, rmcp.sequence 0xff, asf.iana 4542, asf.type, asf.tag, asf.len).
 */
const TSHARK_GOOD: { frame: number; name: string; bytes: string; msg: AsfMessage }[] = [
  { frame: 1, name: 'Presence Ping', bytes: '0600ff06000011be80010000', msg: { type: 'presence-ping', tag: 1 } },
  {
    frame: 2,
    name: 'Presence Pong',
    bytes: '0600ff06000011be40010010000011be000000008100000000000000',
    msg: { type: 'presence-pong', tag: 1, iana: ASF_IANA, oem: 0, supportedEntities: 0x81, supportedInteractions: 0 },
  },
  { frame: 3, name: 'Reset', bytes: '0600ff06000011be1002000b000011be00000000000000', msg: { type: 'reset', tag: 2, bootOptions: NO_OPTIONS } },
  {
    frame: 4,
    name: 'Power-up',
    bytes: '0600ff06000011be1103000b000011be01000000000000',
    msg: { type: 'power-up', tag: 3, bootOptions: { ...NO_OPTIONS, specialCommand: SPECIAL_FORCE_PXE } },
  },
  { frame: 5, name: 'Unconditional Power-down', bytes: '0600ff06000011be12040000', msg: { type: 'power-down', tag: 4 } },
  { frame: 6, name: 'Power Cycle', bytes: '0600ff06000011be1305000b000011be00000000000000', msg: { type: 'power-cycle', tag: 5, bootOptions: NO_OPTIONS } },
  { frame: 7, name: 'Capabilities Request', bytes: '0600ff06000011be81060000', msg: { type: 'capabilities-request', tag: 6 } },
  {
    frame: 8,
    name: 'Capabilities Response',
    bytes: '0600ff06000011be41060010000011be00000000001ff00000000000',
    msg: {
      type: 'capabilities-response',
      tag: 6,
      iana: ASF_IANA,
      oem: 0,
      specialCommands: 0x001f,
      systemCapabilities: 0xf0,
      firmwareCapabilities: 0,
    },
  },
  { frame: 9, name: 'System State Request', bytes: '0600ff06000011be82070000', msg: { type: 'system-state-request', tag: 7 } },
];

describe('ASF messages (DSP0136 §3.2.4)', () => {
  it('type codes (p.22, Wireshark asf_type_vals)', () => {
    assert.deepEqual(
      [
        ASF_TYPE_CODE['presence-ping'],
        ASF_TYPE_CODE['presence-pong'],
        ASF_TYPE_CODE['capabilities-request'],
        ASF_TYPE_CODE['capabilities-response'],
        ASF_TYPE_CODE['system-state-request'],
        ASF_TYPE_CODE['system-state-response'],
        ASF_TYPE_CODE.reset,
        ASF_TYPE_CODE['power-up'],
        ASF_TYPE_CODE['power-cycle'],
        ASF_TYPE_CODE['power-down'],
      ],
      [0x80, 0x40, 0x81, 0x41, 0x82, 0x42, 0x10, 0x11, 0x13, 0x12],
    );
    assert.equal(ASF_IANA, 0x11be);
    assert.deepEqual([S0_WORKING, S3, S5_SOFT_OFF, G3_MECHANICAL_OFF, UNKNOWN], [0, 3, 5, 7, 0x0e]);
  });

  describe('tshark README §1 vectors (asf.pcap frames 1-11)', () => {
    for (const v of TSHARK_GOOD) {
      it(`frame ${v.frame} ${v.name}: decodes and re-encodes byte for byte`, () => {
        const b = fromHex(v.bytes);
        const p = decodeRmcpAsf(b);
        assert.deepEqual(p.rmcp, { version: 6, sequence: 0xff, messageClass: RMCP_CLASS_ASF, ack: false });
        assert.deepEqual(p.asf, v.msg);
        assert.equal(hex(encodeRmcpAsf(0xff, v.msg)), v.bytes);
        assert.equal(asfTypeName(b[8]), v.name);
      });
    }

    it('frame 10 System State Response with the 2-byte body (state, watchdog) decodes', () => {
      const p = decodeRmcpAsf(fromHex('0600ff06000011be420700020000'));
      assert.deepEqual(p.asf, { type: 'system-state-response', tag: 7, systemState: S0_WORKING, watchdogExpired: false });
    });

    it('frame 11 RMCP ACK 06 00 05 86 decodes with no ASF message', () => {
      assert.deepEqual(decodeRmcpAsf(fromHex('06000586')), {
        rmcp: { version: 6, sequence: 5, messageClass: RMCP_CLASS_ASF, ack: true },
        asf: null,
      });
    });
  });

  describe('catalogue §7 templates', () => {
    it('Presence Pong is the 28-byte datagram rmcpping needs (entities 81h = IPMI + ASF 1.0)', () => {
      const b = encodeRmcpAsf(0xff, presencePong(0x08, { ipmi: true, secure: false }));
      assert.equal(b.length, 28);
      // what OpenIPMI ipmi_sim sent for tag 08 (catalogue §9)
      assert.equal(hex(b), '0600ff06000011be40080010000011be000000008100000000000000');
    });

    it('Presence Pong of a pure ASF NIC serving the secure port: entities 01h, interactions 80h', () => {
      const b = encodeRmcpAsf(0xff, presencePong(0x2a, { ipmi: false, secure: true }));
      assert.equal(hex(b), '0600ff06000011be402a0010000011be000000000180000000000000');
    });

    it('Capabilities Response of a full-featured compatibility-port NIC (1F F0 67 F8)', () => {
      const msg: AsfMessage = {
        type: 'capabilities-response',
        tag: 0x21,
        iana: ASF_IANA,
        oem: 0,
        specialCommands: 0x001f,
        systemCapabilities: CAP_RESET_ANY_PORT | CAP_POWER_UP_ANY_PORT | CAP_POWER_DOWN_ANY_PORT | CAP_POWER_CYCLE_ANY_PORT,
        firmwareCapabilities: 0x67f80000,
      };
      const bytes = '0600ff06000011be41210010000011be00000000001ff067f8000000';
      assert.equal(hex(encodeRmcpAsf(0xff, msg)), bytes);
      assert.equal(fromHex(bytes).length, 28);
      assert.deepEqual(decodeRmcpAsf(fromHex(bytes)).asf, msg);
    });

    it('System State Response is 16 bytes: state, watchdog, 2 reserved', () => {
      const msg: AsfMessage = { type: 'system-state-response', tag: 0x33, systemState: S5_SOFT_OFF, watchdogExpired: true };
      assert.equal(hex(encodeRmcpAsf(0xff, msg)), '0600ff06000011be4233000405010000');
      assert.deepEqual(decodeRmcpAsf(fromHex('0600ff06000011be4233000405010000')).asf, msg);
    });

    it('Power Cycle Reset with Force PXE Boot (catalogue §3.7 example)', () => {
      const p = decodeRmcpAsf(fromHex('0600ff06000011be130b000b000011be01000000000000'));
      assert.deepEqual(p.asf, { type: 'power-cycle', tag: 0x0b, bootOptions: { ...NO_OPTIONS, specialCommand: SPECIAL_FORCE_PXE } });
    });

    it('§3.2.5 worked example: request seq 05h, tag 08h; response with the client\'s own seq 09h and the tag copied', () => {
      const req = decodeRmcpAsf(fromHex('06000506000011be82080000'));
      assert.equal(req.rmcp.sequence, 5);
      assert.ok(req.asf);
      const rsp = encodeRmcpAsf(0x09, { type: 'system-state-response', tag: req.asf.tag, systemState: S0_WORKING, watchdogExpired: false });
      assert.equal(hex(rsp.subarray(0, 12)), '06000906000011be42080004');
    });
  });

  describe('field layouts (big-endian)', () => {
    it('boot options: IANA, special command, parameter, boot options mask, OEM parameters', () => {
      const bootOptions: BootOptions = { iana: 0x01020304, specialCommand: 0x02, specialCommandParam: 0x0102, bootOptionsMask: 0x80e0, oemParams: 0xbeef };
      const b = encodeAsf({ type: 'reset', tag: 0x10, bootOptions });
      assert.equal(hex(b), '000011be1010000b' + '01020304' + '02' + '0102' + '80e0' + 'beef');
      assert.deepEqual(decodeAsf(b), { type: 'reset', tag: 0x10, bootOptions });
    });

    it('no boot options: Data Length 0', () => {
      assert.equal(hex(encodeAsf({ type: 'power-up', tag: 1, bootOptions: null })), '000011be11010000');
    });

    it('capabilities: special commands at bytes 9-10, system at 11, firmware at 12-15, byte 16 reserved', () => {
      const b = encodeAsf({ type: 'capabilities-response', tag: 0, iana: 1, oem: 0xa1a2a3a4, specialCommands: 0x0102, systemCapabilities: 0x03, firmwareCapabilities: 0x04050607 });
      assert.equal(hex(b.subarray(8)), '00000001' + 'a1a2a3a4' + '0102' + '03' + '04050607' + '00');
    });

    it('system state: reserved bits 7:4 of the state and 7:1 of the watchdog byte are ignored', () => {
      assert.deepEqual(decodeAsf(fromHex('000011be42000004f3fe0000')), { type: 'system-state-response', tag: 0, systemState: S3, watchdogExpired: false });
    });

    it('decodeAsf reads at an offset (after the RMCP header)', () => {
      assert.deepEqual(decodeAsf(fromHex('0600ff06000011be80010000'), 4), { type: 'presence-ping', tag: 1 });
    });
  });

  describe('round trips for every message type', () => {
    const samples: AsfMessage[] = [
      { type: 'presence-ping', tag: 0 },
      { type: 'presence-ping', tag: 0xfe },
      presencePong(0x7f, { ipmi: false, secure: false }),
      { type: 'presence-pong', tag: 3, iana: 36465, oem: 0xdeadbeef, supportedEntities: 0x81, supportedInteractions: 0xa0 },
      { type: 'capabilities-request', tag: 9 },
      { type: 'capabilities-response', tag: 255, iana: 0xffffffff, oem: 0, specialCommands: 0xffff, systemCapabilities: 0x0f, firmwareCapabilities: 0xffffffff },
      { type: 'system-state-request', tag: 0x10 },
      { type: 'system-state-response', tag: 1, systemState: UNKNOWN, watchdogExpired: false },
      { type: 'system-state-response', tag: 2, systemState: G3_MECHANICAL_OFF, watchdogExpired: true },
      { type: 'reset', tag: 4, bootOptions: null },
      { type: 'reset', tag: 4, bootOptions: { iana: ASF_IANA, specialCommand: 2, specialCommandParam: 1, bootOptionsMask: 0x4000, oemParams: 0 } },
      { type: 'power-up', tag: 5, bootOptions: null },
      { type: 'power-up', tag: 5, bootOptions: { iana: 343, specialCommand: 0xc1, specialCommandParam: 0xffff, bootOptionsMask: 0xffff, oemParams: 0x1234 } },
      { type: 'power-cycle', tag: 6, bootOptions: null },
      { type: 'power-cycle', tag: 6, bootOptions: NO_OPTIONS },
      { type: 'power-down', tag: 7 },
    ];
    for (const msg of samples) {
      it(`${msg.type} tag ${msg.tag}`, () => {
        assert.deepEqual(decodeAsf(encodeAsf(msg)), msg);
        for (const seq of [0, 0x42, 0xff]) {
          const p = decodeRmcpAsf(encodeRmcpAsf(seq, msg));
          assert.equal(p.rmcp.sequence, seq);
          assert.deepEqual(p.asf, msg);
        }
      });
    }
  });

  describe('rejects malformed frames (tshark README §1 frames 12-17 and more)', () => {
    it('frame 12: Data Length 16 but only 10 bytes present: E_LENGTH', () => {
      rejects('E_LENGTH', () => decodeRmcpAsf(fromHex('0600ff06000011be40080010000011be000000008100')));
    });
    it('frame 13: 4 trailing bytes after Data Length 0: E_LENGTH', () => {
      rejects('E_LENGTH', () => decodeRmcpAsf(fromHex('0600ff06000011be80090000deadbeef')));
    });
    it('frame 14: ASF header truncated to 6 bytes: E_SHORT', () => {
      rejects('E_SHORT', () => decodeRmcpAsf(fromHex('0600ff06000011be800a')));
    });
    it('frame 15: class 09h: E_CLASS', () => {
      rejects('E_CLASS', () => decodeRmcpAsf(fromHex('0600ff0900010203')));
    });
    it('frame 16: RMCP version 07h: E_VERSION', () => {
      rejects('E_VERSION', () => decodeRmcpAsf(fromHex('0700ff06000011be800b0000')));
    });
    it('frame 17: unknown type 99h: E_TYPE naming the type', () => {
      rejects('E_TYPE', () => decodeRmcpAsf(fromHex('0600ff06000011be990c0000')), '0x99');
    });
    it('RSP session types (83h Open Session Request, C0h RAKP 1) are not carried here: E_TYPE', () => {
      rejects('E_TYPE', () => decodeRmcpAsf(fromHex('0600ff06000011be83010000')), '0x83');
      rejects('E_TYPE', () => decodeRmcpAsf(fromHex('0600ff06000011bec0010000')), '0xc0');
    });
    it('truncated RMCP header: E_SHORT; RMCP header alone: E_SHORT', () => {
      rejects('E_SHORT', () => decodeRmcpAsf(fromHex('0600ff')));
      rejects('E_SHORT', () => decodeRmcpAsf(fromHex('0600ff06')));
    });
    it('IANA other than 4542 in the ASF header: E_IANA', () => {
      rejects('E_IANA', () => decodeRmcpAsf(fromHex('0600ff060000015780010000')));
    });
    it('an ACK must be exactly 4 bytes: E_LENGTH', () => {
      rejects('E_LENGTH', () => decodeRmcpAsf(fromHex('06000586000011be80010000')));
    });
    it('a normal IPMI-class message is not ASF: E_CLASS; an IPMI-class ACK is still an ACK', () => {
      rejects('E_CLASS', () => decodeRmcpAsf(fromHex('0600ff0700000000000000000000')));
      const ack = decodeRmcpAsf(fromHex('06000587'));
      assert.equal(ack.asf, null);
      assert.equal(ack.rmcp.messageClass, RMCP_CLASS_IPMI);
    });
    it('wrong fixed Data Length for the type: E_LENGTH', () => {
      rejects('E_LENGTH', () => decodeAsf(fromHex('000011be80010001ff'))); // ping with data
      rejects('E_LENGTH', () => decodeAsf(fromHex('000011be40010004000011be'))); // short pong
      rejects('E_LENGTH', () => decodeAsf(fromHex('000011be410100110000000000000000000000000000000000'))); // 17-byte caps
      rejects('E_LENGTH', () => decodeAsf(fromHex('000011be42010003000000'))); // 3-byte state
      rejects('E_LENGTH', () => decodeAsf(fromHex('000011be10010001ff'))); // reset, 1 byte
      rejects('E_LENGTH', () => decodeAsf(fromHex('000011be1001000a000011be000000000000'))); // reset, 10 bytes
      rejects('E_LENGTH', () => decodeAsf(fromHex('000011be12010004000011be'))); // power-down, 4 bytes
    });
  });

  describe('tolerated variants', () => {
    it('Boot Options longer than 11 bytes ("0Bh or greater", p.33): the extra bytes are ignored', () => {
      const p = decodeAsf(fromHex('000011be1101000d000011be01000000000000aabb'));
      assert.deepEqual(p, { type: 'power-up', tag: 1, bootOptions: { ...NO_OPTIONS, specialCommand: 1 } });
    });
    it('Power-down with the 11-byte block the Emulab client sends: decoded, block ignored', () => {
      assert.deepEqual(decodeRmcpAsf(fromHex('0600ff06000011be1204000b000011be00000000000000')).asf, { type: 'power-down', tag: 4 });
    });
    it('non-zero reserved byte in the ASF header is ignored', () => {
      assert.deepEqual(decodeAsf(fromHex('000011be80017700')), { type: 'presence-ping', tag: 1 });
    });
  });

  it('encoders refuse out-of-range fields (UsageError E_USAGE)', () => {
    const bad: unknown[] = [
      { type: 'presence-ping', tag: 256 },
      { type: 'presence-ping', tag: -1 },
      { type: 'no-such-type', tag: 0 },
      { type: 'toString', tag: 0 },
      { type: 'system-state-response', tag: 0, systemState: 16, watchdogExpired: false },
      { type: 'presence-pong', tag: 0, iana: 2 ** 32, oem: 0, supportedEntities: 0, supportedInteractions: 0 },
      { type: 'reset', tag: 0, bootOptions: { ...NO_OPTIONS, specialCommandParam: 0x10000 } },
      { type: 'reset', tag: 0 },
    ];
    for (const m of bad) {
      assert.throws(() => encodeAsf(m as AsfMessage), (e: unknown) => e instanceof UsageError && e.code === 'E_USAGE', JSON.stringify(m));
    }
    assert.throws(() => encodeRmcpAsf(256, { type: 'presence-ping', tag: 0 }), UsageError);
    assert.throws(() => presencePong(300, { ipmi: true, secure: false }), UsageError);
  });
});


describe('decodeRmcpAsf on hostile input (property)', () => {
  it('20,000 random and mutated datagrams: only ProtocolError is thrown, and what decodes re-encodes to itself', () => {
    const rand = prng(0x5eed0623).next;
    const int = (n: number): number => Math.floor(rand() * n);
    const seeds = [...TSHARK_GOOD.map((v) => fromHex(v.bytes)), fromHex('0600ff06000011be420700020000'), fromHex('06000586')];
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      let b: Uint8Array;
      if (i % 4 === 0) {
        b = new Uint8Array(int(40));
        for (let j = 0; j < b.length; j++) b[j] = int(256);
      } else {
        const base = seeds[int(seeds.length)];
        const out = Array.from(base);
        for (let k = 1 + int(2); k > 0; k--) {
          const op = int(4);
          if (op === 0 && out.length > 0) out[int(out.length)] = int(256); // overwrite a byte
          else if (op === 1 && out.length > 0) out.length = int(out.length); // truncate
          else if (op === 2) out.push(...Array.from({ length: 1 + int(12) }, () => int(256))); // extend
          else if (out.length > 11) out[11] = int(20); // rewrite the ASF Data Length byte
        }
        b = Uint8Array.from(out);
      }
      let p;
      try {
        p = decodeRmcpAsf(b);
      } catch (e) {
        assert.ok(e instanceof ProtocolError, `input ${hex(b)} threw ${String(e)}`);
        continue;
      }
      decoded++;
      if (p.asf !== null) assert.deepEqual(decodeRmcpAsf(encodeRmcpAsf(p.rmcp.sequence, p.asf)), p);
    }
    assert.ok(decoded > 1000, `only ${decoded} inputs decoded: the mutator is too destructive`);
  });
});
