/**
 * The SA rules of the memory store (DESIGN §2.5: pending -> active -> previous -> retired), as sql-store.ts
 * applies them in SQL: one active SA per NIC, retired is final, an inbound SPI is used by one live SA of the
 * whole store (adoption by SPI, DESIGN §5), a pending SA below the active one is retired, and a NIC keeps its newest
 * RETIRED_SAS_KEPT retired SAs. Every check comes before the first write, so a call that throws
 * changed nothing. Rows are replaced, never changed in place, so a copy handed out earlier stays as it was.
 */
import { copyIke, copyPair, type MemoryDatabase } from './memory-tables.js';
import { checkFence, noSa, notEnrolled, saRules, spiInUse } from './store-errors.js';
import { RETIRED_SAS_KEPT, type Fence, type SaInput, type SaState, type StoredSa } from './store.js';

/** Rebuild the SPI index from the tables (after a restore). */
export function indexSpis(db: MemoryDatabase): void {
  db.liveSpis.clear();
  for (const gens of db.tables.sas.values()) {
    for (const sa of gens.values()) if (sa.state !== 'retired') db.liveSpis.set(sa.pair.fromNic.spi, sa);
  }
}

/** Store `row` in place of `old` (either may be absent), keeping the SPI index in step. */
function replace(db: MemoryDatabase, old: StoredSa | undefined, row: StoredSa): void {
  const gens = db.tables.sas.get(row.nic);
  if (gens) gens.set(row.pair.generation, row);
  else db.tables.sas.set(row.nic, new Map([[row.pair.generation, row]]));
  if (old && db.liveSpis.get(old.pair.fromNic.spi) === old) db.liveSpis.delete(old.pair.fromNic.spi);
  if (row.state !== 'retired') db.liveSpis.set(row.pair.fromNic.spi, row);
}

function withState(db: MemoryDatabase, s: StoredSa, state: SaState, now: number): void {
  replace(db, s, { ...s, state, updatedAt: now });
}

/** putSa after its argument checks. */
export function putSaRow(db: MemoryDatabase, nic: string, sa: SaInput, now: number, fence: Fence): void {
  const t = db.tables;
  checkFence(nic, fence, t.leases.get(nic) ?? null, 'store an SA');
  if (!t.nics.has(nic)) throw notEnrolled(nic);
  const gen = sa.pair.generation;
  const spi = sa.pair.fromNic.spi;
  const gens = t.sas.get(nic);
  const cur = gens?.get(gen);
  if (cur && cur.state === 'retired' && sa.state !== 'retired') throw saRules.retiredReused(nic, gen);
  if (sa.state !== 'retired') {
    const other = db.liveSpis.get(spi);
    if (other && !(other.nic === nic && other.pair.generation === gen)) throw spiInUse(spi, other.nic, other.pair.generation);
  }
  if (sa.state === 'active') {
    for (const s of gens?.values() ?? []) if (s.state === 'active' && s.pair.generation !== gen) throw saRules.secondActive(nic, s.pair.generation);
  }
  replace(db, cur, { nic, pair: copyPair(sa.pair), state: sa.state, ike: sa.ike && copyIke(sa.ike), updatedAt: now });
  if (sa.state === 'retired') pruneRetired(db, nic);
}

/** Delete the NIC's retired SAs beyond the newest RETIRED_SAS_KEPT (store.ts), with their sequence checkpoints. */
function pruneRetired(db: MemoryDatabase, nic: string): void {
  const gens = db.tables.sas.get(nic);
  if (!gens) return;
  const retired = [...gens.values()].filter((s) => s.state === 'retired').map((s) => s.pair.generation).sort((a, b) => b - a);
  for (const g of retired.slice(RETIRED_SAS_KEPT)) {
    gens.delete(g);
    db.tables.seqCheckpoints.get(nic)?.delete(g);
  }
}

/** activateSa after its argument checks: the station's commit (DESIGN §2.5). */
export function activate(db: MemoryDatabase, nic: string, generation: number, now: number, fence: Fence): void {
  checkFence(nic, fence, db.tables.leases.get(nic) ?? null, 'activate an SA');
  const gens = db.tables.sas.get(nic);
  const target = gens?.get(generation);
  if (!gens || !target) throw noSa(nic, generation);
  if (target.state === 'active') return;
  if (target.state === 'retired') throw saRules.retiredActivated(nic, generation);
  // Make-before-break: keep exactly one previous SA besides the active one. (Replacing a value while
  // iterating a Map visits each key once.)
  for (const s of gens.values()) if (s.state === 'previous' && s.pair.generation !== generation) withState(db, s, 'retired', now);
  for (const s of gens.values()) if (s.state === 'active') withState(db, s, 'previous', now);
  withState(db, target, 'active', now);
  // A pending SA below the new active one can never be committed (the NIC's one pending slot moved past it).
  for (const s of gens.values()) if (s.state === 'pending' && s.pair.generation < generation) withState(db, s, 'retired', now);
  pruneRetired(db, nic);
}

/** setSaState after its argument checks. */
export function changeState(db: MemoryDatabase, nic: string, generation: number, state: Exclude<SaState, 'active'>, now: number, fence: Fence): void {
  checkFence(nic, fence, db.tables.leases.get(nic) ?? null, 'change an SA state');
  const s = db.tables.sas.get(nic)?.get(generation);
  if (!s) throw noSa(nic, generation);
  if (s.state === 'retired' && state !== 'retired') throw saRules.retiredFinal(nic, generation);
  withState(db, s, state, now);
  if (state === 'retired') pruneRetired(db, nic);
}
