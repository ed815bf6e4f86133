/**
 * Structured logs: one JSON object a line with `--log-format json`, else a readable line. To stderr.
 * With a `limit` (lib/log-limit.ts) lines are rate-limited per NIC and reason, and what was left out is summarised.
 */
import type { LogLimiter, Suppressed } from './log-limit.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  /** Write the summaries of lines the limit left out so far (before the process stops). */
  flush(): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

export function createLogger(opts: { format?: LogFormat; level?: LogLevel; component: string; out?: (line: string) => void; limit?: LogLimiter }): Logger {
  const format = opts.format ?? 'text';
  const min = ORDER[opts.level ?? 'info'];
  const out = opts.out ?? ((line: string) => process.stderr.write(line + '\n'));
  const limit = opts.limit;
  const write = (level: LogLevel, msg: string, fields: Record<string, unknown>) => {
    const rec = { time: new Date().toISOString(), level, component: opts.component, msg, ...fields };
    if (format === 'json') {
      out(json(rec));
    } else {
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : json(v)}`)
        .join(' ');
      out(`${rec.time} ${level.toUpperCase().padEnd(5)} ${opts.component}: ${msg}${extra ? ' ' + extra : ''}`);
    }
  };
  limit?.onSuppressed((s: Suppressed) =>
    write(s.level as LogLevel, `'${s.reason}': ${s.count} more suppressed in ${s.seconds} s`, {
      ...s.base, ...(s.nic !== undefined ? { nic: s.nic } : {}), suppressed: s.count, reason: s.reason,
    }),
  );
  const make = (base: Record<string, unknown>): Logger => ({
    log(level, msg, fields) {
      if (ORDER[level] < min) return;
      if (limit && !limit.admit(level, base, msg, fields)) return;
      write(level, msg, { ...base, ...fields });
    },
    child(fields) {
      return make({ ...base, ...fields });
    },
    flush() {
      limit?.flush();
    },
  });
  return make({});
}
