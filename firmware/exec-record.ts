/**
 * The secure commands a NIC executed, kept in its EEPROM (DESIGN §7: "a NIC keeps the identities of the commands it
 * executed in its EEPROM, written before it acts, so a power loss cannot make it run one twice").
 *
 * A ring of EXEC_RING one-page records (pages 69-100), record g in page EXEC_PAGE + g mod EXEC_RING, kind 0x06:
 *   epoch u32 | rmcpSeq u8 | tag u8 | type u8 | via u8 (0 secure) | SA generation u32 | completeFrom u32 |
 *   host state before u8 | after u8 | reserved u16 | first epoch u32
 * A command's identity is the sync epoch it was first sent under with its RMCP sequence, ASF tag and type
 * (wire/sync-frame.ts); `epoch` is the epoch of the transmission that ran it (a station that found it not executed
 * may send it again under its own epoch: the NIC learnt its first epoch from that sync, nic-sync.ts). The entry is
 * written before the NIC acts, so a write torn by a power loss belongs to a command that never ran. The NIC
 * answers a retransmission of a recorded command, under any epoch, with its ACK and does not run it again, also
 * after a reboot.
 *
 * `completeFrom`: above the transmission epoch of every entry evicted so far; a command last sent under an epoch
 * below it may have run and been evicted.
 *
 * What a station may learn about a command it never saw acknowledged (query(), the sync's answers):
 *  - executed: it is in the ring. Always true: the ring only holds commands that ran (or were about to, when
 *    power went: written before acting), even in an image restored from a backup.
 *  - not executed: the NIC is sure it never ran and never will: its epoch is over (a sync ended it), the ring is
 *    complete for it, and it is not there. For the epochs that were live when the checkpoint this NIC last booted
 *    from was written (the newest issued, and the older ones a non-exclusive sync left live: the checkpoint's live
 *    floor) the ring may be an older image (a restored backup lacks what ran under them after the backup was
 *    taken), so those are unknown; an epoch below the live floor had ended before that checkpoint was written, so
 *    whatever ran under it is in the image, whichever copy it is.
 *  - unknown: anything else (evicted, from an epoch the NIC does not know, the ring's newest page unreadable).
 */
import { ERASED, type EepromDevice } from './eeprom-device.js';
import { ProtocolError, UsageError } from '../common/errors.js';
import { putU32, u32 } from '../common/bytes.js';
import { EEPROM_PAGE, KIND, allBytes, corrupt, decodeRecord, encodeRecord, writePages, type Decoded } from './eeprom-record.js';
import type { CommandIdentity, CommandQuery, QueryAnswer } from '../wire/sync-frame.js';
import { HOST_STATES, type HostState } from './host-state.js';
import { mutated } from '../common/mutation.js';

export const EXEC_PAGE = 69;
export const EXEC_RING = 32;
const PAYLOAD = 24;

export interface ExecEntry extends CommandIdentity {
  /** The epoch the command was first sent under: with rmcpSeq, tag and type, its identity. */
  firstEpoch: number;
  via: 'secure';
  saGeneration: number;
  hostBefore: HostState;
  hostAfter: HostState;
}

interface Stored extends ExecEntry {
  /** The record's generation: 1 for the first command this image recorded. */
  n: number;
  completeFrom: number;
}

const pageName = (i: number): string => `executed-command record (page ${EXEC_PAGE + i})`;

function encode(e: Stored): Uint8Array {
  const p = new Uint8Array(PAYLOAD);
  putU32(p, 0, e.epoch);
  p[4] = e.rmcpSeq;
  p[5] = e.tag;
  p[6] = e.type;
  p[7] = 0;
  putU32(p, 8, e.saGeneration);
  putU32(p, 12, e.completeFrom);
  p[16] = HOST_STATES.indexOf(e.hostBefore);
  p[17] = HOST_STATES.indexOf(e.hostAfter);
  putU32(p, 20, e.firstEpoch);
  return p;
}

function decode(n: number, p: Uint8Array, bad: (d: string) => ProtocolError): Stored {
  if (p.length !== PAYLOAD) throw bad(`payload is ${p.length} bytes, not ${PAYLOAD}`);
  if (p[7] !== 0 || p[16] >= HOST_STATES.length || p[17] >= HOST_STATES.length) throw bad('a field is out of range');
  return {
    n, epoch: u32(p, 0), rmcpSeq: p[4], tag: p[5], type: p[6], via: 'secure', saGeneration: u32(p, 8),
    completeFrom: u32(p, 12), hostBefore: HOST_STATES[p[16]], hostAfter: HOST_STATES[p[17]], firstEpoch: u32(p, 20),
  };
}

/** A command by its identity: first epoch, RMCP sequence, ASF tag, type. */
export interface FirstIdentity { firstEpoch: number; rmcpSeq: number; tag: number; type: number }

const same = (a: FirstIdentity, b: FirstIdentity): boolean =>
  a.firstEpoch === b.firstEpoch && a.rmcpSeq === b.rmcpSeq && a.tag === b.tag && a.type === b.type;

export class ExecRecord {
  readonly #dev: EepromDevice;
  /** Ring contents by slot (null: never written). */
  readonly #slots: (Stored | null)[];
  #newest: number;
  #completeFrom: number;
  /** The newest page could not be proven older than a lost newer record (torn, or bad after use). */
  readonly #mayHaveLost: boolean;
  readonly recovered: string[];
  /** Page writes since format (the format's erase included), carried by the records' generations. */
  pageWrites: number;

  private constructor(dev: EepromDevice, slots: (Stored | null)[], newest: number, mayHaveLost: boolean, recovered: string[]) {
    this.#dev = dev;
    this.#slots = slots;
    this.#newest = newest;
    this.#completeFrom = newest > 0 ? slots[newest % EXEC_RING]!.completeFrom : 0;
    this.#mayHaveLost = mayHaveLost;
    this.recovered = recovered;
    this.pageWrites = EXEC_RING + newest;
  }

  /** Erase the ring (part of formatting an image: no entry of an earlier image may come back). */
  static erase(dev: EepromDevice): void {
    const blank = new Uint8Array(EEPROM_PAGE).fill(ERASED);
    for (let i = 0; i < EXEC_RING; i++) dev.write((EXEC_PAGE + i) * EEPROM_PAGE, blank);
  }

  /**
   * Read the ring at boot. As for the checkpoint ring (eeprom-image.ts), only the page the next record goes to may
   * be torn; anything else that is not exactly what a sound ring holds there is E_EEPROM_CRC naming the page.
   */
  static load(dev: EepromDevice, name: string): ExecRecord {
    const pages = Array.from({ length: EXEC_RING }, (_, i) => dev.read((EXEC_PAGE + i) * EEPROM_PAGE, EEPROM_PAGE));
    const decoded: Decoded[] = pages.map((pg, i) => decodeRecord(pg, KIND.exec, name, pageName(i)));
    let newest = 0;
    for (const d of decoded) if (d.state === 'ok' && d.generation > newest) newest = d.generation;
    const next = (newest + 1) % EXEC_RING;
    const slots: (Stored | null)[] = new Array(EXEC_RING).fill(null);
    const recovered: string[] = [];
    let mayHaveLost = false;
    decoded.forEach((d, i) => {
      const back = (newest - i + EXEC_RING) % EXEC_RING;
      const expected = newest - back >= 1 ? newest - back : 0;
      const erased = allBytes(pages[i], ERASED);
      const sound = expected === 0 ? erased : d.state === 'ok' && d.generation === expected;
      if (i === next) {
        // The page record newest + 1 would go to. Erased (ring not round yet) or holding newest + 1 - R: nothing
        // was lost. Anything else: a torn write of a command that never ran, or a record that went bad after its
        // command ran; nobody can tell, so the ring claims no completeness from here on.
        if (!sound) {
          mayHaveLost = true;
          recovered.push(`${pageName(i)}: ${d.state === 'bad' ? d.why : 'not the record that belongs there'}; a torn write, or a record lost after its command ran: commands of the current epochs are reported 'unknown'`);
        }
        if (sound && expected > 0) slots[i] = decode(expected, (d as Extract<Decoded, { state: 'ok' }>).payload, (x) => corrupt(name, pageName(i), x));
        return;
      }
      if (!sound) {
        const found = d.state === 'bad' ? d.why : d.state === 'blank' ? (erased ? 'erased' : 'a blank frame over a non-blank body') : `record ${d.generation}`;
        const belongs = expected === 0 ? 'no record was written there' : `record ${expected} belongs there`;
        throw corrupt(name, pageName(i), `${found}; ${belongs}, and only the page of the next record may be torn`);
      }
      if (expected > 0) slots[i] = decode(expected, (d as Extract<Decoded, { state: 'ok' }>).payload, (x) => corrupt(name, pageName(i), x));
    });
    return new ExecRecord(dev, slots, newest, mayHaveLost, recovered);
  }

  /** Records executed since the image was formatted. */
  get count(): number {
    return this.#newest;
  }

  /** The recorded command with this identity, if the ring still holds it. */
  find(id: FirstIdentity): ExecEntry | null {
    // Newest first: a retransmission asks about a recent command.
    for (let n = this.#newest; n > 0 && n > this.#newest - EXEC_RING; n--) {
      const e = this.#slots[n % EXEC_RING];
      if (e && e.n === n && same(e, id)) return e;
    }
    return null;
  }

  /**
   * Write the entry of a command about to run: before the NIC acts (a torn write throws and the command does not
   * run). Throws E_EEPROM_FULL when the record counter would pass 2^32-1.
   */
  append(e: ExecEntry): void {
    if (this.#newest >= 0xffffffff) throw new UsageError('E_EEPROM_FULL', 'the executed-command record counter would pass 2^32-1; the part is worn out');
    const n = this.#newest + 1;
    const evicted = n > EXEC_RING ? this.#slots[n % EXEC_RING] : null;
    const completeFrom = evicted ? Math.max(this.#completeFrom, evicted.epoch + 1) : this.#completeFrom;
    const stored: Stored = { ...e, via: 'secure', n, completeFrom };
    this.pageWrites++;
    if (!mutated('exec-record-ram')) writePages(this.#dev, EXEC_PAGE + (n % EXEC_RING), encodeRecord(KIND.exec, n, encode(stored)));
    this.#slots[n % EXEC_RING] = stored;
    this.#newest = n;
    this.#completeFrom = completeFrom;
  }

  /**
   * What this NIC knows of a command (see the file comment): found by its identity, else judged by the epoch it was
   * last sent under (`q.epoch`: the station's log has every epoch it was sent under, and the latest is the one
   * whose transmissions may be missing from this record). `issued`: the highest epoch this NIC has issued;
   * `bootEpoch`: the highest it had issued when it last booted; `floor`: epochs below it were issued by another
   * history of this NIC (it jumped above them after its EEPROM was restored: sa-database.ts epochFloor);
   * `bootLiveFloor`: epochs below it had ended when the checkpoint it booted from was written (sa-database.ts
   * liveFloor; bootEpoch when not given).
   */
  query(q: CommandQuery, issued: number, bootEpoch: number, floor = 0, bootLiveFloor = bootEpoch): QueryAnswer {
    if (this.find(q)) return 'executed';
    if (q.epoch === 0 || q.firstEpoch === 0 || q.epoch > issued || q.epoch < floor) return 'unknown';
    if (mutated('exec-record-ram')) return q.epoch < this.#completeFrom ? 'unknown' : 'not-executed';
    if (this.#mayHaveLost && q.epoch <= bootEpoch) return 'unknown';
    if ((q.epoch <= bootEpoch && q.epoch >= bootLiveFloor) || q.epoch < this.#completeFrom) return 'unknown';
    return 'not-executed';
  }

  /** The newest entries, oldest first (for status). */
  recent(n: number): (ExecEntry & { n: number })[] {
    const out: (ExecEntry & { n: number })[] = [];
    for (let k = Math.max(1, this.#newest - Math.min(n, EXEC_RING) + 1); k <= this.#newest; k++) {
      const e = this.#slots[k % EXEC_RING];
      if (e && e.n === k) out.push({ ...e });
    }
    return out;
  }
}
