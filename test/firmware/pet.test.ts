/**
 * ASF alerts on the wire (wire/pet.ts, wire/pet-ack.ts; docs/ALERTS.md): the SNMPv1 Trap-PDU carrying a Platform
 * Event Trap, byte for byte as ../shared/reference/asf-alerts-pet-catalogue.md §2.4 gives the worked example (which
 * tshark, snmptrapd and ipmi-pet decoded there), the specific-trap numbers of §3, and the PET Acknowledge datagram
 * of §4.2 that FreeIPMI's `ipmi-pet --pet-acknowledge` sent. Invalid input throws coded errors.
 */
import assert from 'node:assert/strict';
import {
  ALERT_CODES, alertEventOf, alertSpecific, decodePet, decodeTrap, encodePet, encodeTrap, petTimeMs, petTimestamp, specificTrap,
  type AlertEvent, type Pet,
} from '../../wire/pet.js';
import { acknowledges, decodePetAck, encodePetAck, petAckFor } from '../../wire/pet-ack.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Catalogue §2.4, "OS hung": the whole SNMP message (UDP payload, 110 bytes). */
const WORKED_EXAMPLE = hex(`
30 6C 02 01 00 04 06 70 75 62 6C 69 63
A4 5F 06 09 2B 06 01 04 01 98 6F 01 01
40 04 C0 00 02 0A 02 01 06 02 03 20 6F 01 43 03 01 86 A0
30 3F 30 3D 06 0A 2B 06 01 04 01 98 6F 01 01 01 04 2F
01 23 45 67 89 AB CD EF 01 23 45 67 89 AB CD EF 00 01 34 F9 4D C0 00 00
50 68 10 FF FF 23 00 01 FF FF 00 00 00 00 00 19 00 00 11 BE 00 01 C1`);

const EXAMPLE_PET: Pet = {
  guid: hex('0123456789ABCDEF0123456789ABCDEF'), sequence: 1, timestamp: 888753600, utcOffset: 0,
  trapSource: 0x50, eventSource: 0x68, severity: 0x10, sensorDevice: 0xff, sensorNumber: 0xff, entity: 0x23, entityInstance: 0,
  eventData: hex('01FFFF0000000000'), language: 0x19, manufacturerId: 4542, systemId: 1, oemFields: [],
};

describe('wire: ASF alert, PET in an SNMPv1 trap (catalogue §2)', () => {
  it('§2.4 worked example: encodes byte for byte (110 bytes, PET 47 bytes)', () => {
    const pet = encodePet(EXAMPLE_PET);
    assert.equal(pet.length, 47);
    const trap = encodeTrap({ community: 'public', agentAddr: '192.0.2.10', specific: 0x206f01, timeTicks: 100000, pet });
    assert.equal(toHex(trap), toHex(WORKED_EXAMPLE));
    assert.equal(trap.length, 110);
  });

  it('§2.4 worked example: decodes to its fields', () => {
    const t = decodeTrap(WORKED_EXAMPLE);
    assert.deepEqual({ ...t, pet: toHex(t.pet) }, { community: 'public', agentAddr: '192.0.2.10', specific: 2125569, timeTicks: 100000, pet: toHex(encodePet(EXAMPLE_PET)) });
    const p = decodePet(t.pet);
    assert.deepEqual(p, { ...EXAMPLE_PET, guid: EXAMPLE_PET.guid, eventData: EXAMPLE_PET.eventData });
    assert.equal(alertEventOf(t.specific), 'os-hang');
    // 888753600 s after 1998-01-01 is 2026-03-01 12:00:00 UTC (what ipmi-pet printed).
    assert.equal(new Date(petTimeMs(p.timestamp)!).toISOString(), '2026-03-01T12:00:00.000Z');
    assert.equal(petTimestamp(Date.UTC(2026, 2, 1, 12)), 888753600);
  });

  it('§3: specific-trap numbers of the events (sensor type << 16 | 6Fh << 8 | direction | offset)', () => {
    const expected: Partial<Record<AlertEvent, number>> = {
      'os-hang': 2125569, 'power-up': 1928960, 'boot-initiated': 1928961, 'warm-reset': 1928962, 'power-down': 618240,
      'power-restore': 2453248, 'cable-pull': 356100, 'os-boot': 1011458, 'security': 421637,
      'sleep': 2256643, 'wake': 2256640, 'power-loss': 2256647,
    };
    for (const [e, n] of Object.entries(expected)) assert.equal(alertSpecific(e as AlertEvent), n, e);
    assert.equal(alertSpecific('cable-plug'), specificTrap(0x05, 0x6f, 0x04, true));
    assert.equal(alertSpecific('cable-plug'), 0x056f84);
    // Every event has its own number, and ED1 carries the offset in bits 3:0 (what Linux decoders print, §3.2).
    const all = Object.keys(ALERT_CODES) as AlertEvent[];
    assert.equal(new Set(all.map(alertSpecific)).size, all.length);
    for (const e of all) {
      assert.equal(alertEventOf(alertSpecific(e)), e);
      assert.equal(ALERT_CODES[e].ed[0] & 0x0f, ALERT_CODES[e].offset, e);
    }
  });

  it('a sensor type >= 80h needs a leading 00 in the specific-trap INTEGER (§2.2)', () => {
    const pet = encodePet(EXAMPLE_PET);
    const t = encodeTrap({ community: 'public', agentAddr: '10.0.0.1', specific: specificTrap(0xc0, 0x6f, 1), timeTicks: 0, pet });
    assert.equal(decodeTrap(t).specific, 0xc06f01);
    assert.ok(toHex(t).includes('020400c06f01'));
  });

  it('OEM custom fields (Lifeline: the alert id, binary FRU field of 8 bytes) round-trip', () => {
    const p = { ...EXAMPLE_PET, oemFields: [hex('08 0102030405060708')] };
    const b = encodePet(p);
    assert.equal(b.length, 56);
    assert.equal(toHex(b.subarray(46)), '080102030405060708c1');
    assert.deepEqual(decodePet(b).oemFields.map(toHex), ['080102030405060708']);
  });

  it('refuses what is not a PET trap (coded errors)', () => {
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as { code: string }).code;
      }
      return 'none';
    };
    assert.equal(codeOf(() => decodePet(encodePet(EXAMPLE_PET).subarray(0, 46))), 'E_LENGTH'); // ipmi-pet rejects 46 bytes too
    const noEnd = encodePet(EXAMPLE_PET);
    noEnd[46] = 0x00;
    assert.equal(codeOf(() => decodePet(noEnd)), 'E_LENGTH');
    const v2 = WORKED_EXAMPLE.slice();
    v2[4] = 1; // version 1 = SNMPv2c
    assert.equal(codeOf(() => decodeTrap(v2)), 'E_VERSION');
    const other = WORKED_EXAMPLE.slice();
    other[21] = 0x70; // enterprise 3184
    assert.equal(codeOf(() => decodeTrap(other)), 'E_TYPE');
    assert.equal(codeOf(() => decodeTrap(WORKED_EXAMPLE.subarray(0, 60))), 'E_LENGTH');
    assert.equal(codeOf(() => decodeTrap(Uint8Array.of(0x30))), 'E_SHORT');
    assert.equal(codeOf(() => encodeTrap({ community: 'public', agentAddr: 'nic-1', specific: 1, timeTicks: 0, pet: encodePet(EXAMPLE_PET) })), 'E_USAGE');
  });
});

describe('wire: PET Acknowledge (catalogue §4.2)', () => {
  /** What `ipmi-pet -h <nic> --pet-acknowledge` sent for the §2.4 trap (RMCP class 7, IPMI 1.5 session-less). */
  const IPMI_PET_ACK = hex('06 00 FF 07 00 00000000 00000000 13 20 10 D0 81 78 17 01 00 C0 4D F9 34 68 FF FF 01 FF FF 50');

  it('encodes the FreeIPMI datagram byte for byte', () => {
    assert.equal(toHex(encodePetAck(petAckFor(EXAMPLE_PET, 0x1e))), toHex(IPMI_PET_ACK));
  });

  it('decodes it and it acknowledges the PET it was made from, no other', () => {
    const a = decodePetAck(IPMI_PET_ACK);
    assert.deepEqual(a, { sequence: 1, timestamp: 888753600, eventSource: 0x68, sensorDevice: 0xff, sensorNumber: 0xff, eventData: [1, 0xff, 0xff], rqSeq: 0x1e });
    assert.ok(acknowledges(a, EXAMPLE_PET));
    assert.ok(!acknowledges(a, { ...EXAMPLE_PET, sequence: 2 }));
    assert.ok(!acknowledges(a, { ...EXAMPLE_PET, timestamp: 888753601 }));
  });

  it('refuses a bad checksum, a session, another command', () => {
    const codeOf = (b: Uint8Array) => {
      try {
        decodePetAck(b);
        return 'none';
      } catch (e) {
        return (e as { code: string }).code;
      }
    };
    const bad = IPMI_PET_ACK.slice();
    bad[32] ^= 1;
    assert.equal(codeOf(bad), 'E_CHECKSUM');
    const session = IPMI_PET_ACK.slice();
    session[9] = 1;
    assert.equal(codeOf(session), 'E_TYPE');
    const cmd = IPMI_PET_ACK.slice();
    cmd[19] = 0x16;
    assert.equal(codeOf(cmd), 'E_TYPE');
    assert.equal(codeOf(IPMI_PET_ACK.subarray(0, 20)), 'E_LENGTH');
  });
});
