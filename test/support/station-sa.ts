/**
 * Read the SA a lab's station holds for a NIC, straight from its store (opened with the lab's cluster key),
 * so a test can check what tshark cannot (the AH ICV) and seal packets exactly as the station would.
 */
import { loadClusterKeyFile } from '../../mgmt-station/store/cluster-key.js';
import { openStore } from '../../mgmt-station/store/open-store.js';
import type { SaPair } from '../../wire/sa.js';
import type { Lab } from './lab.js';

export async function stationActiveSa(lab: Lab, nic: string): Promise<SaPair> {
  const store = await openStore(lab.store, loadClusterKeyFile(lab.keyFile));
  try {
    const sa = await store.getActiveSa(nic);
    if (!sa) throw new Error(`the lab's station holds no active SA for ${nic}`);
    return sa.pair;
  } finally {
    await store.close();
  }
}
