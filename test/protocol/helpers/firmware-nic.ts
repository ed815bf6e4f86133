/**
 * The NIC of the commit fault test, played by the real firmware: an SaDatabase on an EEPROM image in a
 * memory device (firmware/sa-database.ts, eeprom-image.ts). Same surface as NicDouble, so the exhaustive
 * test runs against both the model and the firmware. A NIC crash loses everything but the EEPROM: coming
 * back up boots a new image + database from the same bytes.
 */
import { MemoryEepromDevice } from '../../../firmware/eeprom-device.js';
import { EepromImage, EEPROM_SIZE } from '../../../firmware/eeprom-image.js';
import { SaDatabase } from '../../../firmware/sa-database.js';
import type { SaPair } from '../../../wire/sa.js';

export class FirmwareNic {
  private readonly dev = new MemoryEepromDevice(EEPROM_SIZE);
  private db: SaDatabase;
  private isUp = true;
  /** Next inbound sequence number per SA generation (a station's counter; restarts resume above the floor). */
  private readonly seq = new Map<number, bigint>();

  constructor() {
    EepromImage.format(this.dev, 'nic-lab', { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' });
    this.db = new SaDatabase(EepromImage.load(this.dev));
  }

  get up(): boolean {
    return this.isUp;
  }

  set up(v: boolean) {
    if (v && !this.isUp) this.db = new SaDatabase(EepromImage.load(this.dev)); // boot from the EEPROM
    this.isUp = v;
  }

  get active(): SaPair | null {
    return this.db.active;
  }

  get previous(): SaPair | null {
    return this.db.previous;
  }

  get pending(): SaPair | null {
    return this.db.pending;
  }

  get maxGeneration(): number {
    return this.db.nextGeneration() - 1;
  }

  install(sa: SaPair): void {
    this.db.writePending(sa);
    this.db.commitPending(sa.generation);
    this.authenticate(sa);
  }

  writePending(sa: SaPair): boolean {
    if (!this.isUp) return false;
    this.db.writePending(sa);
    return true;
  }

  commit(generation: number): boolean {
    if (!this.isUp) return false;
    try {
      this.db.commitPending(generation); // false = already active: SA_CONFIRM is idempotent
      return true;
    } catch {
      return false;
    }
  }

  discard(generation: number): boolean {
    if (!this.isUp) return false;
    this.db.discardPending(generation);
    return true;
  }

  accepts(sa: SaPair): boolean {
    const held = this.db.lookupInbound(sa.toNic.spi);
    return held !== null && held.generation === sa.generation && Buffer.compare(held.toNic.encKey, sa.toNic.encKey) === 0;
  }

  authenticate(sa: SaPair): boolean {
    if (!this.isUp || !this.accepts(sa)) return false;
    const floor = this.db.inboundFloor(sa.generation);
    const next = [this.seq.get(sa.generation) ?? 1n, floor + 1n].reduce((a, b) => (a > b ? a : b));
    this.db.onAuthenticated(sa.generation, next);
    this.seq.set(sa.generation, next + 1n);
    return true;
  }
}
