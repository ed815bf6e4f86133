/**
 * The bench's targets (issue 4 "How it will be judged") checked against one run's figures, and the
 * readable table printed on stderr when it is a terminal.
 */
import { round } from './stats.js';

export interface TargetCheck {
  id: string;
  what: string;
  /** e.g. '<= 1.5' */
  target: string;
  value: number | null;
  unit: string;
  /** null: not measured in this run (see note). */
  pass: boolean | null;
  note?: string;
}

export function check(id: string, what: string, value: number | null | undefined, op: '<=' | '>=', limit: number, unit: string, note?: string): TargetCheck {
  const v = value === undefined || value === null || Number.isNaN(value) ? null : round(value);
  const pass = v === null ? null : op === '<=' ? v <= limit : v >= limit;
  return { id, what, target: `${op} ${limit}`, value: v, unit, pass, ...(note ? { note } : {}) };
}

export interface Row { section: string; name: string; value: string; note?: string }

const mark = (p: boolean | null) => (p === null ? 'n/a ' : p ? 'PASS' : 'FAIL');

/** A plain-text table: figures by section, then the targets with PASS/FAIL. */
export function renderTable(rows: Row[], targets: TargetCheck[]): string {
  const w1 = Math.max(...rows.map((r) => r.name.length), 10);
  const w2 = Math.max(...rows.map((r) => r.value.length), 8);
  const out: string[] = [];
  let section = '';
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      out.push('', section);
    }
    out.push(`  ${r.name.padEnd(w1)}  ${r.value.padStart(w2)}${r.note ? '  ' + r.note : ''}`);
  }
  out.push('', 'Targets');
  const t1 = Math.max(...targets.map((t) => t.what.length));
  for (const t of targets) {
    const v = t.value === null ? '-' : `${t.value} ${t.unit}`;
    out.push(`  ${mark(t.pass)}  ${t.what.padEnd(t1)}  ${v.padStart(16)}  (${t.target})${t.note ? '  ' + t.note : ''}`);
  }
  return out.join('\n') + '\n';
}
