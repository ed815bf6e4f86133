/** Structured logs: one JSON object a line with `--log-format json`, else a readable line. To stderr. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(opts: { format?: LogFormat; level?: LogLevel; component: string; out?: (line: string) => void }): Logger {
  const format = opts.format ?? 'text';
  const min = ORDER[opts.level ?? 'info'];
  const out = opts.out ?? ((line: string) => process.stderr.write(line + '\n'));
  const make = (base: Record<string, unknown>): Logger => ({
    log(level, msg, fields) {
      if (ORDER[level] < min) return;
      const rec = { time: new Date().toISOString(), level, component: opts.component, msg, ...base, ...fields };
      if (format === 'json') {
        out(JSON.stringify(rec, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
      } else {
        const extra = Object.entries({ ...base, ...fields })
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))}`)
          .join(' ');
        out(`${rec.time} ${level.toUpperCase().padEnd(5)} ${opts.component}: ${msg}${extra ? ' ' + extra : ''}`);
      }
    },
    child(fields) {
      return make({ ...base, ...fields });
    },
  });
  return make({});
}
