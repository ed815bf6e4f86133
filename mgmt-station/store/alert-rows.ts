/**
 * The alerts table's rules, shared by the SQL and memory backends (docs/ALERTS.md): what an alert row may hold,
 * and how a SQL row reads back.
 */
import { UsageError } from '../../common/errors.js';
import type { Row } from './sql-driver.js';
import type { AlertInput, AlertQuery, AlertRecord } from './store.js';
import * as v from './validate.js';

export const ALERT_COLUMNS = 'id, nic, alert_id, received_at, station, event, severity, specific_trap, pet_sequence, pet_time, pet, via';

function bad(what: string): never {
  throw new UsageError('E_USAGE', `alert ${what}`);
}

export function assertAlert(nic: string, station: string, a: AlertInput): void {
  v.assertName('nic id', nic);
  v.assertName('station id', station);
  if (typeof a !== 'object' || a === null) bad('must be an object');
  if (typeof a.alertId !== 'string' || !/^[0-9a-f]{16}$/.test(a.alertId)) bad(`id must be 16 lower-case hex digits, got ${JSON.stringify(a.alertId)}`);
  v.assertTime('receivedAt', a.receivedAt);
  if (typeof a.event !== 'string' || !/^[a-z0-9-]{1,40}$/.test(a.event)) bad(`event must be a short name, got ${JSON.stringify(a.event)}`);
  if (!Number.isInteger(a.severity) || a.severity < 0 || a.severity > 255) bad('severity must be 0..255');
  if (!Number.isInteger(a.specific) || a.specific < 0 || a.specific > 0x7fffffff) bad('specific-trap must be 0..2^31-1');
  if (!Number.isInteger(a.petSequence) || a.petSequence < 0 || a.petSequence > 0xffff) bad('PET sequence must be 0..65535');
  if (a.petTime !== null) v.assertTime('petTime', a.petTime);
  if (typeof a.pet !== 'string' || !/^([0-9a-f]{2}){47,110}$/.test(a.pet)) bad('PET must be 47..110 bytes in hex');
  if (a.via !== 'secure' && a.via !== 'clear') bad(`via must be secure or clear, got ${JSON.stringify(a.via)}`);
}

export function assertAlertQuery(q: AlertQuery): void {
  if (q.nic !== undefined) v.assertName('nic id', q.nic);
  if (q.afterId !== undefined && (!Number.isInteger(q.afterId) || q.afterId < 0)) bad('afterId must be an integer >= 0');
  if (q.limit !== undefined && (!Number.isInteger(q.limit) || q.limit < 1)) bad('limit must be an integer >= 1');
}

export function alertParams(nic: string, station: string, a: AlertInput): (string | number | null)[] {
  return [nic, a.alertId, a.receivedAt, station, a.event, a.severity, a.specific, a.petSequence, a.petTime, a.pet, a.via];
}

export function alertFromRow(r: Row): AlertRecord {
  return {
    id: Number(r.id), nic: String(r.nic), alertId: String(r.alert_id), receivedAt: Number(r.received_at), station: String(r.station),
    event: String(r.event), severity: Number(r.severity), specific: Number(r.specific_trap), petSequence: Number(r.pet_sequence),
    petTime: r.pet_time === null || r.pet_time === undefined ? null : Number(r.pet_time), pet: String(r.pet), via: r.via === 'clear' ? 'clear' : 'secure',
  };
}
