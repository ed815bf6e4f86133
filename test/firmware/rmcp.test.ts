import assert from 'node:assert/strict';
import { ProtocolError, UsageError } from '../../common/errors.js';
import { fromHex, hex } from '../../common/bytes.js';
import {
  RMCP_CLASS_ASF,
  RMCP_CLASS_IPMI,
  RMCP_CLASS_OEM,
  RMCP_PORT,
  RMCP_SECURE_PORT,
  RMCP_SEQ_NO_ACK,
  RMCP_VERSION_1_0,
  decodeRmcpHeader,
  encodeRmcpHeader,
  rmcpAckFor,
  type RmcpHeader,
} from '../../wire/rmcp.js';

function rejects(code: string, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof ProtocolError && e.code === code);
}

describe('RMCP header (DSP0136 §3.2.2)', () => {
  it('constants: version 06h, no-ACK sequence FFh, classes 06h/07h/08h, ports 026Fh/0298h', () => {
    assert.equal(RMCP_VERSION_1_0, 0x06);
    assert.equal(RMCP_SEQ_NO_ACK, 0xff);
    assert.deepEqual([RMCP_CLASS_ASF, RMCP_CLASS_IPMI, RMCP_CLASS_OEM], [6, 7, 8]);
    assert.equal(RMCP_PORT, 0x26f);
    assert.equal(RMCP_SECURE_PORT, 0x298);
  });

  it('decodes the ping header 06 00 FF 06 (tshark frame 1: version 0x06, seq 0xff, class 0x06, type 0)', () => {
    assert.deepEqual(decodeRmcpHeader(fromHex('0600ff06000011be80010000')), {
      version: 6,
      sequence: 0xff,
      messageClass: RMCP_CLASS_ASF,
      ack: false,
    });
  });

  it('decodes the ACK 06 00 05 86 (tshark frame 11: seq 0x05, class 0x06, type 1)', () => {
    assert.deepEqual(decodeRmcpHeader(fromHex('06000586')), { version: 6, sequence: 5, messageClass: 6, ack: true });
  });

  it('accepts the IPMI and OEM classes', () => {
    assert.equal(decodeRmcpHeader(fromHex('0600ff07')).messageClass, RMCP_CLASS_IPMI);
    assert.equal(decodeRmcpHeader(fromHex('0600ff08')).messageClass, RMCP_CLASS_OEM);
  });

  it('encodes header fields in wire order with the reserved byte zero', () => {
    assert.equal(hex(encodeRmcpHeader({ version: 6, sequence: 9, messageClass: 6, ack: false })), '06000906');
    assert.equal(hex(encodeRmcpHeader({ version: 6, sequence: 9, messageClass: 6, ack: true })), '06000986');
  });

  it('round-trips every valid class, ACK bit and sequence', () => {
    for (const messageClass of [6, 7, 8]) {
      for (const ack of [false, true]) {
        for (let sequence = 0; sequence < 256; sequence += 17) {
          const h: RmcpHeader = { version: 6, sequence, messageClass, ack };
          assert.deepEqual(decodeRmcpHeader(encodeRmcpHeader(h)), h);
        }
      }
    }
  });

  describe('rejects malformed headers', () => {
    it('fewer than 4 bytes: E_SHORT', () => {
      rejects('E_SHORT', () => decodeRmcpHeader(new Uint8Array(0)));
      rejects('E_SHORT', () => decodeRmcpHeader(fromHex('0600ff')));
    });
    it('version 07h (tshark frame 16, which Wireshark accepts silently): E_VERSION', () => {
      rejects('E_VERSION', () => decodeRmcpHeader(fromHex('0700ff06000011be800b0000')));
    });
    it('legacy versions 0-5: E_VERSION', () => {
      for (let v = 0; v < 6; v++) rejects('E_VERSION', () => decodeRmcpHeader(Uint8Array.of(v, 0, 0xff, 6)));
    });
    it('class 09h (tshark frame 15, shown as plain UDP): E_CLASS', () => {
      rejects('E_CLASS', () => decodeRmcpHeader(fromHex('0600ff0900010203')));
    });
    it('every class outside 6/7/8, and reserved bits 6:5 set: E_CLASS', () => {
      for (let c = 0; c < 256; c++) {
        const low = c & 0x1f;
        const valid = (c & 0x60) === 0 && low >= 6 && low <= 8;
        if (valid) assert.equal(decodeRmcpHeader(Uint8Array.of(6, 0, 1, c)).messageClass, low);
        else rejects('E_CLASS', () => decodeRmcpHeader(Uint8Array.of(6, 0, 1, c)));
      }
    });
  });

  it('refuses to encode out-of-range fields (UsageError E_USAGE)', () => {
    const bad: RmcpHeader[] = [
      { version: 256, sequence: 0, messageClass: 6, ack: false },
      { version: 6, sequence: -1, messageClass: 6, ack: false },
      { version: 6, sequence: 1.5, messageClass: 6, ack: false },
      { version: 6, sequence: 0, messageClass: 32, ack: false },
    ];
    for (const h of bad) {
      assert.throws(() => encodeRmcpHeader(h), (e: unknown) => e instanceof UsageError && e.code === 'E_USAGE');
    }
  });
});

describe('RMCP ACK rules (DSP0136 §3.2.2.1)', () => {
  it('§3.2.5 worked example: request seq 05h, class ASF -> ACK 06 00 05 86', () => {
    const ack = rmcpAckFor(decodeRmcpHeader(fromHex('06000506000011be80080000')));
    assert.ok(ack);
    assert.equal(hex(ack), '06000586');
  });

  it('§3.2.5 worked example: the console ACKs the response seq 09h with 06 00 09 86', () => {
    assert.equal(hex(rmcpAckFor({ version: 6, sequence: 9, messageClass: 6, ack: false }) ?? new Uint8Array()), '06000986');
  });

  it('copies the class of an IPMI or OEM message', () => {
    assert.equal(hex(rmcpAckFor({ version: 6, sequence: 0, messageClass: 7, ack: false }) ?? new Uint8Array()), '06000087');
    assert.equal(hex(rmcpAckFor({ version: 6, sequence: 254, messageClass: 8, ack: false }) ?? new Uint8Array()), '0600fe88');
  });

  it('sequence FFh: "the receiver must not provide an RMCP ACK"', () => {
    assert.equal(rmcpAckFor(decodeRmcpHeader(fromHex('0600ff06'))), null);
  });

  it('an ACK is never acknowledged', () => {
    assert.equal(rmcpAckFor(decodeRmcpHeader(fromHex('06000586'))), null);
    for (let s = 0; s < 255; s++) assert.equal(rmcpAckFor({ version: 6, sequence: s, messageClass: 6, ack: true }), null);
  });

  it('only for a supported RMCP version', () => {
    assert.equal(rmcpAckFor({ version: 5, sequence: 1, messageClass: 6, ack: false }), null);
  });

  it('every sequence 00h-FEh of a normal message is acknowledged with the same sequence', () => {
    for (let s = 0; s < 255; s++) {
      const ack = rmcpAckFor({ version: 6, sequence: s, messageClass: 6, ack: false });
      assert.ok(ack);
      assert.deepEqual(decodeRmcpHeader(ack), { version: 6, sequence: s, messageClass: 6, ack: true });
    }
  });
});
