/**
 * A tiny in-test stand-in for the NIC's SA slots (the real database is firmware/sa-database.ts,
 * written elsewhere; deliberately not imported). It holds active / previous / pending, all
 * persisted in "EEPROM" (they survive a NIC crash), and follows DESIGN §2.5's rule:
 *   the SA that most recently authenticated a station packet is kept until a station packet
 *   authenticates under a newer one.
 */
import type { SaPair } from '../../../wire/sa.js';

export class NicDouble {
  active: SaPair | null = null;
  previous: SaPair | null = null;
  pending: SaPair | null = null;
  /** Generation of the SA that last authenticated a station packet (persisted too). */
  lastAuth: number | null = null;
  up = true;
  /** Highest generation ever written (what the EEPROM tells a restarted host agent). */
  maxGeneration = 0;

  /** Enrolment / manual keying: an SA already in use by the station. */
  install(sa: SaPair): void {
    this.active = sa;
    this.lastAuth = sa.generation;
    this.maxGeneration = Math.max(this.maxGeneration, sa.generation);
  }

  writePending(sa: SaPair): boolean {
    if (!this.up) return false;
    this.pending = sa;
    this.maxGeneration = Math.max(this.maxGeneration, sa.generation);
    return true;
  }

  commit(generation: number): boolean {
    if (!this.up) return false;
    if (this.active?.generation === generation) return true; // already committed: idempotent
    if (this.pending?.generation !== generation) return false;
    const old = [this.active, this.previous].filter((x): x is SaPair => x !== null);
    const keep = old.find((x) => x.generation === this.lastAuth) ?? this.active;
    this.previous = keep;
    this.active = this.pending;
    this.pending = null;
    return true;
  }

  discard(generation: number): boolean {
    if (!this.up) return false;
    if (this.pending?.generation === generation) this.pending = null;
    return true;
  }

  /** Would a station packet under `sa` authenticate (SPI and keys match a held slot)? */
  accepts(sa: SaPair): boolean {
    return [this.active, this.previous].some((x) => x !== null && x.toNic.spi === sa.toNic.spi && Buffer.compare(x.toNic.encKey, sa.toNic.encKey) === 0);
  }

  /** A station packet arrives under `sa`. Returns whether it authenticated. */
  authenticate(sa: SaPair): boolean {
    if (!this.up || !this.accepts(sa)) return false;
    this.lastAuth = sa.generation;
    if (this.active && this.active.generation === sa.generation) this.previous = null; // make-before-break done
    return true;
  }
}
