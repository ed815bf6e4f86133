/**
 * State-transition tables (seed Fig. 6, DESIGN §4): client (host) state x station state -> expected
 * behaviour of one action. Text format, one row a line, `|`-separated like a Markdown table:
 *
 *   # comment
 *   | id | client | station | action | expect | note |
 *   | 1  | up     | up      | secure-state | S0 | the secure path in the normal case |
 *
 * The first non-comment row is the header and must name these columns (note is optional, any order).
 * Parsing is pure; errors are UsageError('E_TABLE') naming the file and line and saying what is allowed.
 */
import { UsageError } from '../../common/errors.js';

export const CLIENT_STATES = ['up', 'hung', 'pre-boot', 'suspend', 'off', 'no-sa'] as const;
export const STATION_STATES = ['up', 'hung', 'cold-boot', 'cold-boot-seed'] as const;
export const ACTIONS = ['secure-ping', 'secure-state', 'secure-power-cycle', 'secure-reset', 'secure-power-down', 'secure-power-up', 'refresh', 'clear-power-up', 'clear-ping'] as const;
export const OUTCOMES = ['ok', 'refused', 'failed', 'no-sa', 'S0', 'S3', 'S5'] as const;

export type ClientState = (typeof CLIENT_STATES)[number];
export type StationState = (typeof STATION_STATES)[number];
export type Action = (typeof ACTIONS)[number];
export type Outcome = (typeof OUTCOMES)[number];

export interface TableRow {
  line: number;
  id: string;
  client: ClientState;
  station: StationState;
  action: Action;
  expect: Outcome;
  note: string;
  /** NIC configuration for this row: `clear-management=power-up,...` in the note enables clear commands. */
  clearManagement: string[];
}

const REQUIRED = ['id', 'client', 'station', 'action', 'expect'] as const;

function cells(line: string): string[] {
  const t = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return t.split('|').map((c) => c.trim());
}

export function parseTable(text: string, file: string): TableRow[] {
  const lines = text.split(/\r?\n/);
  let header: string[] | null = null;
  const rows: TableRow[] = [];
  const ids = new Set<string>();
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const err = (msg: string): never => {
      throw new UsageError('E_TABLE', `${file}:${n}: ${msg}`);
    };
    if (!line.startsWith('|')) err(`expected a row starting with '|', got '${line.slice(0, 40)}'`);
    if (/^\|[\s:-]+(\|[\s:-]+)*\|?$/.test(line)) return; // Markdown separator row
    const c = cells(line);
    if (!header) {
      header = c.map((h) => h.toLowerCase());
      for (const r of REQUIRED) if (!header.includes(r)) err(`header must name the columns ${REQUIRED.join(', ')} (and optionally note); missing '${r}'`);
      for (const h of header) if (![...REQUIRED, 'note'].includes(h as never)) err(`unknown column '${h}'; columns are ${REQUIRED.join(', ')}, note`);
      return;
    }
    if (c.length !== header.length) err(`row has ${c.length} cells, the header has ${header.length}`);
    const get = (k: string) => c[header!.indexOf(k)] ?? '';
    const one = <T extends string>(k: string, allowed: readonly T[]): T => {
      const v = get(k);
      if (!(allowed as readonly string[]).includes(v)) err(`${k} '${v}' is not one of ${allowed.join(', ')}`);
      return v as T;
    };
    const id = get('id');
    if (!id) err('id is empty');
    if (ids.has(id)) err(`id '${id}' appears twice`);
    ids.add(id);
    const note = header.includes('note') ? get('note') : '';
    const cm = /clear-management=([a-z,-]+)/.exec(note);
    const clearManagement = cm ? cm[1].split(',').filter(Boolean) : [];
    for (const c2 of clearManagement) if (!['reset', 'power-up', 'power-down', 'power-cycle'].includes(c2)) err(`clear-management command '${c2}' is not reset, power-up, power-down or power-cycle`);
    rows.push({ line: n, id, client: one('client', CLIENT_STATES), station: one('station', STATION_STATES), action: one('action', ACTIONS), expect: one('expect', OUTCOMES), note, clearManagement });
  });
  if (!header) throw new UsageError('E_TABLE', `${file}: no header row (| id | client | station | action | expect | note |)`);
  if (rows.length === 0) throw new UsageError('E_TABLE', `${file}: the table has no rows`);
  return rows;
}
