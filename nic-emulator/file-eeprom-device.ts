/**
 * An EepromDevice backed by one file per NIC (DESIGN §3). Reads and writes are positional and synchronous:
 * the firmware writes rarely (a checkpoint per K packets, a few pages per refresh), and a synchronous write
 * means an acknowledged packet is never ahead of its checkpoint on disk.
 *
 * The file is not held open: a fleet of 10,000 NICs would otherwise spend 10,000 file descriptors on files
 * that are written a few times an hour. Boot reads come from one preloaded copy of the image's used region
 * (`preload`), dropped with `release()` once the image is parsed. After boot, the first write opens the file and
 * the descriptor serves every read and write of that NIC until the current turn of the event loop ends (one
 * setImmediate closes all such descriptors): a refresh or an enrolment writes several pages in one call of the
 * firmware, and an open and a close per page were 80 % of a page write's cost (tmpfs: 25 µs against 5). Each page
 * is still its own positional write, so what a power loss can tear is unchanged; descriptors stay bounded by the
 * NICs that write in one turn (a batch of datagrams and the control requests handled with it).
 *
 * Fault injection for the lab: `tearNextWrite(atByte)` makes the next write stop after `atByte` bytes, as if
 * mains power were lost mid-write; the NIC then goes down and boots again from the file. Writes that fit in
 * `atByte` complete and are not torn: the count runs on into the following writes.
 */
import { closeSync, fchmodSync, fstatSync, openSync, readSync, writeSync, fsyncSync } from 'node:fs';
import type { EepromDevice } from '../firmware/eeprom-device.js';
import { TornWriteError } from '../firmware/eeprom-device.js';
import { LifelineError, ProtocolError, UsageError } from '../common/errors.js';

/** One erased (0xFF) image per part size, shared by every create(): nothing per NIC stays resident. */
const erased = new Map<number, Uint8Array>();

/** Devices whose write descriptor is open in this turn of the event loop; one setImmediate closes them all. */
const turnHeld = new Set<FileEepromDevice>();
let turnCloseScheduled = false;
/**
 * At most this many write descriptors open at once: a turn that never reaches the check phase (an eager boot of a
 * whole fleet chains only microtasks; one request that boots every NIC) closes the oldest as it opens more, so the
 * descriptors stay within RLIMIT_NOFILE whatever one turn writes.
 */
const MAX_TURN_HELD = 256;

function closeTurnHeld(): void {
  turnCloseScheduled = false;
  for (const d of turnHeld) d.closeTurnFd();
  turnHeld.clear();
}

export class FileEepromDevice implements EepromDevice {
  readonly size: number;
  readonly path: string;
  private tearAt: number | null = null;
  private preloaded: Uint8Array | null = null;
  /** Told of every write() that failed (E_EEPROM_IO), before it is thrown: the NIC's shell logs it. */
  onWriteError: ((e: Error) => void) | null = null;
  /** fsync after each write: off by default in the lab (the page cache survives a killed process). */
  durable = false;

  private constructor(path: string, size: number) {
    this.path = path;
    this.size = size;
  }

  /**
   * Open an existing image file, preloading its first `preload` bytes for boot: by default the region the
   * image uses (pages 0-116: header to the IPMI users record, firmware/eeprom-image.ts map). Size is checked by
   * the loader.
   */
  static open(path: string, preload = 0x1d40): FileEepromDevice {
    return FileEepromDevice.withFd(path, 'r', (fd) => {
      const st = fstatSync(fd);
      // The image holds every SA key and the PSK: readable by its owner only, also a file made before that was so.
      if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) fchmodSync(fd, st.mode & 0o600);
      const dev = new FileEepromDevice(path, st.size);
      // Left to the image loader, an empty file would read as a blank, never formatted part.
      if (dev.size === 0) throw new ProtocolError('E_EEPROM_SIZE', `${path}: the EEPROM file is 0 bytes (truncated?); restore it from a backup, or delete it to start this NIC blank`);
      const n = Math.min(preload, dev.size);
      dev.preloaded = new Uint8Array(n);
      readSync(fd, dev.preloaded, 0, n, 0);
      return dev;
    });
  }

  /**
   * Create a new, blank (0xFF, like an erased part) image file of `size` bytes, mode 0600 (the image holds the NIC's
   * SA keys, its pre-shared key and its IPMI passwords); fails if it exists.
   */
  static create(path: string, size: number): FileEepromDevice {
    let blank = erased.get(size);
    if (!blank) erased.set(size, (blank = new Uint8Array(size).fill(0xff)));
    const dev = new FileEepromDevice(path, size);
    // The first boot formats the image (a dozen page writes): they go through this one descriptor, kept until
    // release(), rather than an open and a close each (10,000 fresh NICs spent most of their start-up in open(2)).
    FileEepromDevice.withFd(path, 'wx+', (fd) => {
      writeSync(fd, blank!, 0, size, 0);
      dev.bootFd = fd;
    });
    return dev;
  }

  /**
   * Open `path`, run `f` on the descriptor, close it. Every file system failure, the open's and the read's or
   * write's inside `f` (e.g. EISDIR when a directory stands where the file should be), becomes E_EEPROM_IO
   * naming the file.
   */
  private static withFd<T>(path: string, flags: 'r' | 'r+' | 'wx+', f: (fd: number) => T, held: number | null = null): T {
    let fd: number;
    if (held !== null) fd = held;
    else {
      try {
        fd = openSync(path, flags, 0o600); // (the mode applies to a file 'wx+' creates)
      } catch (e) {
        throw new LifelineError('E_EEPROM_IO', `cannot ${flags === 'wx+' ? 'create' : 'open'} EEPROM file ${path}: ${(e as Error).message}`);
      }
    }
    let keep = false;
    try {
      const r = f(fd);
      keep = flags === 'wx+' || held !== null; // create() hands its descriptor on; a held one stays open
      return r;
    } catch (e) {
      if (e instanceof LifelineError) throw e;
      throw new LifelineError('E_EEPROM_IO', `cannot ${flags === 'r' ? 'read' : 'write'} EEPROM file ${path}: ${(e as Error).message}`);
    } finally {
      if (!keep && held === null) closeSync(fd);
    }
  }

  /** A fresh image's descriptor during its first boot (create() to release()); null otherwise. */
  private bootFd: number | null = null;
  /** After boot: the descriptor the first write of this turn of the event loop opened (see the top). */
  private turnFd: number | null = null;

  /** The descriptor reads and writes go through now without an open of their own: the boot's, or this turn's. */
  private get heldFd(): number | null {
    return this.bootFd ?? this.turnFd;
  }

  /** Opens the file for this turn of the event loop (E_EEPROM_IO naming it when it cannot be). */
  private openForTurn(): number {
    let fd: number;
    try {
      fd = openSync(this.path, 'r+');
    } catch (e) {
      throw new LifelineError('E_EEPROM_IO', `cannot open EEPROM file ${this.path}: ${(e as Error).message}`);
    }
    this.turnFd = fd;
    if (turnHeld.size >= MAX_TURN_HELD) {
      const oldest = turnHeld.values().next().value!;
      turnHeld.delete(oldest);
      oldest.closeTurnFd();
    }
    turnHeld.add(this);
    if (!turnCloseScheduled) {
      turnCloseScheduled = true;
      setImmediate(closeTurnHeld);
    }
    return fd;
  }

  /** The end of the turn (or close()): the write descriptor goes. */
  closeTurnFd(): void {
    if (this.turnFd === null) return;
    const fd = this.turnFd;
    this.turnFd = null;
    try {
      closeSync(fd);
    } catch (e) {
      // Only this device closes it, so a failure is the file system's (a write-back error reported at close: EIO,
      // ENOSPC on some file systems): an EEPROM write failure like any other, logged and counted by the NIC's owner.
      this.onWriteError?.(new LifelineError('E_EEPROM_IO', `cannot close EEPROM file ${this.path} after writing it: ${(e as Error).message}`));
    }
  }

  read(offset: number, length: number): Uint8Array {
    this.bounds(offset, length);
    const p = this.preloaded;
    // Boot reads are views into the preloaded copy, not copies: the image loader keeps nothing it reads (each
    // record's payload is copied when decoded) and the copy is dropped at release(). A few hundred small copies per
    // NIC were a third of an enrolled fleet's start-up, most of it in the garbage collector.
    if (p && offset + length <= p.length) return p.subarray(offset, offset + length);
    const out = new Uint8Array(length);
    FileEepromDevice.withFd(this.path, 'r', (fd) => readSync(fd, out, 0, length, offset), this.heldFd);
    return out;
  }

  write(offset: number, bytes: Uint8Array): void {
    this.bounds(offset, bytes.length);
    let n = bytes.length;
    let torn = false;
    if (this.tearAt !== null && this.tearAt >= bytes.length) {
      // Power goes after tearAt more bytes: this write completes (not torn); the rest counts down in the next ones.
      this.tearAt -= bytes.length;
    } else if (this.tearAt !== null) {
      n = this.tearAt;
      this.tearAt = null;
      torn = true;
    }
    try {
      FileEepromDevice.withFd(this.path, 'r+', (fd) => {
        if (n > 0) writeSync(fd, bytes, 0, n, offset);
        if (this.durable) fsyncSync(fd);
      }, this.heldFd ?? this.openForTurn());
    } catch (e) {
      this.onWriteError?.(e as Error);
      throw e;
    }
    const p = this.preloaded;
    if (p && offset < p.length) p.set(bytes.subarray(0, Math.min(n, p.length - offset)), offset);
    if (torn) throw new TornWriteError(`power lost after ${n} of ${bytes.length} bytes at offset ${offset} of ${this.path}`);
  }

  /** Boot is over: drop the preloaded copy (reads then go to the file). */
  release(): void {
    this.preloaded = null;
    this.closeBootFd();
  }

  private closeBootFd(): void {
    if (this.bootFd === null) return;
    const fd = this.bootFd;
    this.bootFd = null;
    try {
      closeSync(fd);
    } catch {
      // already closed: nothing held
    }
  }

  /**
   * Fault injection: power is lost once `atByte` more bytes are written. The write that crosses that point is
   * torn after its first bytes; writes that fit before it complete and are not torn (e.g. with 64-byte page
   * writes, atByte 64 stores a record's first page whole and tears the second at 0 bytes).
   */
  tearNextWrite(atByte: number): void {
    if (!Number.isSafeInteger(atByte) || atByte < 0) throw new UsageError('E_USAGE', `tear-next-write needs a whole number of bytes >= 0, got ${atByte}`);
    this.tearAt = atByte;
  }

  close(): void {
    this.preloaded = null;
    this.closeBootFd();
    this.closeTurnFd();
    turnHeld.delete(this);
  }

  private bounds(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new LifelineError('E_EEPROM_IO', `access ${offset}+${length} outside ${this.path} (${this.size} bytes)`);
    }
  }
}
