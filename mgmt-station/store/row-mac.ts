/**
 * MACs on the runtime rows a station acts on besides the command log (command-log.ts): sequence checkpoints
 * (DESIGN §2.6) and NIC sync epochs (DESIGN §7). Someone with write access to the store but not the cluster
 * key could otherwise lower a checkpoint, so a station would reuse sequence numbers (an AES-GCM nonce reused,
 * a captured packet accepted again), or lower a sync epoch, so a NIC's epoch would be issued twice.
 *
 *   mac = HMAC-SHA-256(sub-key 'store row mac v1', JSON [tag, nic, ...values])
 *
 * The tag ('lifeline-seq-v1', 'lifeline-sync-epoch-v1') separates the tables; the NIC id (and SA generation)
 * bind the row to its place, so a row copied to another NIC or generation does not verify. 64-bit values are
 * encoded as decimal strings, as the SQL backends store them.
 *
 * What a MAC cannot catch: an older version of the same row copied back (a restored backup, or a rollback by
 * hand) verifies, since it was sealed by a station. That is caught elsewhere: a NIC whose sync counter is ahead
 * of the store's says the store was rolled back, and the session resumes above what the NIC reports.
 */
import { createHmac } from 'node:crypto';
import { UsageError } from '../../common/errors.js';
import type { ClusterKey } from './cluster-key.js';
import { sameHex } from './command-log.js';

export class RowMacs {
  readonly #key: Uint8Array;

  constructor(clusterKey: ClusterKey) {
    this.#key = clusterKey.subkey('store row mac v1');
  }

  /** `${fields}\0${mac}` of MACs computed here: a verification of the same row again needs no HMAC (bounded). */
  readonly #known = new Set<string>();

  #mac(fields: readonly (string | number)[]): string {
    const text = JSON.stringify(fields);
    const mac = createHmac('sha256', this.#key).update(text).digest('hex');
    if (this.#known.size >= 4096) this.#known.clear();
    this.#known.add(`${text}\0${mac}`);
    return mac;
  }

  #verify(fields: readonly (string | number)[], mac: unknown): boolean {
    if (typeof mac !== 'string') return false;
    const text = JSON.stringify(fields);
    if (this.#known.has(`${text}\0${mac}`)) return true;
    return sameHex(this.#mac(fields), mac);
  }

  /** Over (nic, generation, outReserved, inHighest); the values as bigints or as their stored decimal text. */
  seqMac(nic: string, generation: number, outReserved: bigint | string, inHighest: bigint | string): string {
    return this.#mac(['lifeline-seq-v1', nic, generation, String(outReserved), String(inHighest)]);
  }

  syncMac(nic: string, maxEpoch: number): string {
    return this.#mac(['lifeline-sync-epoch-v1', nic, maxEpoch]);
  }

  /** Throws E_STORE unless `mac` seals this checkpoint. */
  verifySeq(nic: string, generation: number, outReserved: bigint | string, inHighest: bigint | string, mac: unknown): void {
    if (!this.#verify(['lifeline-seq-v1', nic, generation, String(outReserved), String(inHighest)], mac)) throw seqAltered(nic, generation);
  }

  /** Throws E_STORE unless `mac` seals this sync epoch. */
  verifySync(nic: string, maxEpoch: number, mac: unknown): void {
    if (!this.#verify(['lifeline-sync-epoch-v1', nic, maxEpoch], mac)) throw syncAltered(nic);
  }
}

export function seqAltered(nic: string, generation: number): UsageError {
  return altered(`the sequence checkpoint of ${nic} SA generation ${generation}`, nic);
}

export function syncAltered(nic: string): UsageError {
  return altered(`the sync epoch row of ${nic}`, nic);
}

function altered(what: string, nic: string): UsageError {
  return new UsageError(
    'E_STORE',
    `${what} was altered outside a station (its MAC does not verify under the cluster key), so no station acts on it: ` +
      `restore the store from a backup, or audit who wrote to it (start with \`mgmt-station audit ${nic}\`)`,
  );
}
