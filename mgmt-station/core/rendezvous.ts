/**
 * Which live station should own a NIC (DESIGN §5, docs/STATION.md "Station cluster"): rendezvous (highest random
 * weight) hashing, Thaler & Ravishankar 1996 — each (NIC, station) pair gets a score and the NIC's order of
 * preference is its stations by score, highest first. Every station computes the same order from the same member
 * list, with no coordination; a station that joins takes about 1/k of each other station's NICs and nothing moves
 * between the others; a station that leaves gives its NICs out evenly to the rest.
 *
 * The score is FNV-1a (32 bits) over the NIC id, a 0 byte and the station id, finished with MurmurHash3's fmix32
 * (FNV alone mixes its last bytes poorly, and station ids differ in their last byte). Not a secret: anyone may know
 * which station prefers which NIC.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finaliser. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The NIC's part of every score (its id hashed once, then each station id continues from it). */
function nicSeed(nic: string): number {
  return Math.imul(fnv(FNV_OFFSET, nic) ^ 0, FNV_PRIME) >>> 0; // the 0 byte between the two ids
}

/** The score of `station` for `nic`: a higher score is preferred. */
export function score(nic: string, station: string): number {
  return fmix32(fnv(nicSeed(nic), station));
}

/** The NIC's stations from `members`, most preferred first (ties, which need a 32-bit collision, by station id). */
export function preferenceOrder(nic: string, members: readonly string[]): string[] {
  const seed = nicSeed(nic);
  return members
    .map((m) => ({ m, s: fmix32(fnv(seed, m)) }))
    .sort((a, b) => b.s - a.s || (a.m < b.m ? -1 : a.m > b.m ? 1 : 0))
    .map((x) => x.m);
}

/**
 * `station`'s place in the NIC's order over `members` (0: its preferred owner), or -1 if it is not a member. Costs
 * one score per member, no sort.
 */
export function rankOf(nic: string, station: string, members: readonly string[]): number {
  const seed = nicSeed(nic);
  const mine = fmix32(fnv(seed, station));
  let rank = 0;
  let found = false;
  for (const m of members) {
    if (m === station) {
      found = true;
      continue;
    }
    const s = fmix32(fnv(seed, m));
    if (s > mine || (s === mine && m < station)) rank++;
  }
  return found ? rank : -1;
}
