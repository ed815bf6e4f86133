/**
 * Structured logs: one JSON object a line with `--log-format json`, else a readable line. To stderr.
 * With a `limit` (lib/log-limit.ts) lines are rate-limited per NIC and reason, and what was left out is summarised.
 * With `batchMs`, debug and info lines are written together at most every batchMs (one write for many lines: a
 * write to stderr's pipe is a syscall that wakes its reader, ~100 µs on this VM, and a daemon enrolling a fleet logs
 * a line or two per NIC); a warning or an error writes at once, after the lines before it, as do flush() and exit.
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

export function createLogger(opts: { format?: LogFormat; level?: LogLevel; component: string; out?: (line: string) => void; limit?: LogLimiter; batchMs?: number }): Logger {
  const format = opts.format ?? 'text';
  const min = ORDER[opts.level ?? 'info'];
  const direct = opts.out ?? ((line: string) => process.stderr.write(line + '\n'));
  const batch = opts.batchMs !== undefined && opts.batchMs > 0 ? batchedLines(direct, opts.batchMs) : null;
  const out = (line: string, level: LogLevel) => (batch ? batch.write(line, ORDER[level] >= ORDER.warn) : direct(line));
  const limit = opts.limit;
  const write = (level: LogLevel, msg: string, fields: Record<string, unknown>) => {
    const rec = { time: new Date().toISOString(), level, component: opts.component, msg, ...fields };
    if (format === 'json') {
      out(json(rec), level);
    } else {
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : json(v)}`)
        .join(' ');
      out(`${rec.time} ${level.toUpperCase().padEnd(5)} ${opts.component}: ${msg}${extra ? ' ' + extra : ''}`, level);
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
      batch?.flush();
    },
  });
  return make({});
}

/**
 * Lines held for at most `ms` and handed to `out` as one string (its lines joined by newlines, without the last
 * newline, as `out` adds one); `urgent` writes what is held and the line at once. What is held is written when the
 * process exits (process 'exit': stderr's pipe or file is written synchronously).
 */
function batchedLines(out: (text: string) => void, ms: number): { write(line: string, urgent: boolean): void; flush(): void } {
  let held: string[] = [];
  let timer: NodeJS.Timeout | null = null;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (held.length === 0) return;
    const text = held.join('\n');
    held = [];
    out(text);
  };
  process.on('exit', flush);
  return {
    write(line, urgent) {
      held.push(line);
      if (urgent || held.length >= 1000) flush();
      else if (!timer) timer = setTimeout(flush, ms).unref();
    },
    flush,
  };
}
