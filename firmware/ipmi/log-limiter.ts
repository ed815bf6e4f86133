/**
 * Rate limit for log effects, per key (DESIGN §6: "a flood of bad input moves counters, not megabytes of
 * log"). At most one line per key per interval of virtual time; the next line that passes says how many were
 * held back. Counters are kept elsewhere and count every event.
 */
import type { IpmiEffect } from './ipmi-types.js';

export const LOG_INTERVAL_MS = 10_000;

export class LogLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly intervalMs = LOG_INTERVAL_MS, private readonly maxKeys = 256) {}

  /** The log effect to emit for `key` at `now`, or null while the key is within its interval. */
  line(key: string, now: number, level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): IpmiEffect | null {
    const l = this.last.get(key);
    if (l && now - l.at < this.intervalMs) {
      l.suppressed++;
      return null;
    }
    const suppressed = l?.suppressed ?? 0;
    if (!l && this.last.size >= this.maxKeys) this.last.delete(this.last.keys().next().value as string);
    this.last.set(key, { at: now, suppressed: 0 });
    return { kind: 'log', level, msg, fields: suppressed ? { ...fields, suppressed } : fields };
  }
}
