/**
 * `mgmt-station events [NIC] [--follow] [--json]` (docs/ALERTS.md): the ASF alerts the cluster's stations stored,
 * oldest first (the newest EVENTS_SHOWN), for one NIC or all. `--follow` then streams new ones as they are stored,
 * by polling the store every FOLLOW_POLL_MS: it needs no daemon, works on any station of a cluster (every station
 * stores the alerts it receives in the shared store), and sees what every station stored. With `--json` the list
 * is one JSON array; with `--follow` one JSON object per line (NDJSON), so a consumer can read them as they come.
 */
import { printJson } from '../lib/cli.js';
import { ALERT_CODES, type AlertEvent } from '../wire/pet.js';
import type { AlertRecord, Store } from './store/store.js';

export const EVENTS_SHOWN = 100;
export const FOLLOW_POLL_MS = 50;
/** Ids re-read below the last printed one: PostgreSQL may commit a smaller id after a larger one (two writers). */
const REREAD_IDS = 64;

const SEVERITIES: Record<number, string> = { 0x00: 'unspecified', 0x01: 'monitor', 0x02: 'information', 0x04: 'ok', 0x08: 'non-critical', 0x10: 'critical', 0x20: 'non-recoverable' };

/** One alert as `events --json` prints it. */
export function alertJson(a: AlertRecord): Record<string, unknown> {
  const code = (ALERT_CODES as Record<string, (typeof ALERT_CODES)[AlertEvent] | undefined>)[a.event];
  return {
    id: a.id, nic: a.nic, event: a.event, text: code?.text ?? null, severity: SEVERITIES[a.severity] ?? a.severity,
    receivedAt: new Date(a.receivedAt).toISOString(), petTime: a.petTime === null ? null : new Date(a.petTime).toISOString(),
    petSequence: a.petSequence, specificTrap: a.specific, alertId: a.alertId, station: a.station, via: a.via, pet: a.pet,
  };
}

function line(a: AlertRecord): string {
  const j = alertJson(a);
  return `${j.receivedAt} ${a.nic} ${a.event} (${j.severity}) ${j.text ?? `specific-trap ${a.specific}`} seq=${a.petSequence} id=${a.alertId} by ${a.station}\n`;
}

export async function eventsVerb(store: Store, nic: string | undefined, follow: boolean, json: boolean, stop: Promise<void>): Promise<void> {
  const first = await store.listAlerts({ nic, limit: EVENTS_SHOWN });
  if (!follow) {
    if (json) printJson(first.map(alertJson));
    else for (const a of first) process.stdout.write(line(a));
    return;
  }
  const out = (a: AlertRecord) => process.stdout.write(json ? JSON.stringify(alertJson(a)) + '\n' : line(a));
  const printed = new Set<number>();
  let last = 0;
  for (const a of first) {
    out(a);
    printed.add(a.id);
    last = Math.max(last, a.id);
  }
  let stopped = false;
  void stop.then(() => (stopped = true));
  while (!stopped) {
    await Promise.race([new Promise((r) => setTimeout(r, FOLLOW_POLL_MS)), stop]);
    if (stopped) break;
    for (const a of await store.listAlerts({ nic, afterId: Math.max(0, last - REREAD_IDS) })) {
      if (printed.has(a.id)) continue;
      out(a);
      printed.add(a.id);
      last = Math.max(last, a.id);
    }
    if (printed.size > 4 * REREAD_IDS) for (const id of [...printed]) if (id <= last - REREAD_IDS) printed.delete(id);
  }
}
