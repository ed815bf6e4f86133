/**
 * Rate-limited logging (DESIGN §6: "a flood of bad input moves counters, not megabytes of log"). Lines are grouped
 * by what they are about and why: the logger's fixed fields (the NIC), the line's own `nic` field, its level and its
 * reason (the `event` field of an IKE line, else the message with its numbers blanked). Per group, the first
 * `burst` lines of a window of `windowMs` go out; the rest are counted, and when the window ends one line says how
 * many were left out ("'clear command refused': 14321 more suppressed in 10 s"). The detail stays in the counters
 * (a NIC's `counters`, a daemon's drops): the log only says that something happens, and how often.
 *
 * A shell helper: it reads the clock and sets timers (both injectable for tests). The pure cores only return log
 * effects; the shells (nic-emulator/nic-node.ts, mgmt-station's daemon) write them through this.
 */

export interface LogLimitOptions {
  /** Window per group, ms (default 10,000). */
  windowMs?: number;
  /** Lines a group may write per window (default 5). */
  burst?: number;
  /** Groups kept at once; lines of further groups share one group (default 65,536). */
  maxGroups?: number;
  now?: () => number;
  /** Run `f` after `ms`; returns a cancel function. Default: an unref'd setTimeout. */
  after?: (ms: number, f: () => void) => () => void;
}

/** A summary the limiter asks its logger to write: `count` lines of group `reason` were left out over `seconds`. */
export interface Suppressed {
  level: string;
  base: Record<string, unknown>;
  nic: unknown;
  reason: string;
  count: number;
  seconds: number;
}

interface Group {
  start: number;
  shown: number;
  suppressed: number;
  level: string;
  base: Record<string, unknown>;
  nic: unknown;
  reason: string;
  cancel: (() => void) | null;
}

const OVERFLOW = '(other reasons)';
/**
 * Groups kept before a sweep is scheduled: a group whose window ended without anything suppressed has no timer of
 * its own, and a daemon that logged one line for each of 10,000 NICs (enrolled, refreshed) would otherwise hold its
 * group (about 1 KiB with its key) until maxGroups forced a sweep (issue 16).
 */
const SWEEP_FROM = 256;

export class LogLimiter {
  readonly windowMs: number;
  readonly burst: number;
  private readonly maxGroups: number;
  private readonly now: () => number;
  private readonly after: (ms: number, f: () => void) => () => void;
  private readonly groups = new Map<string, Group>();
  private sink: ((s: Suppressed) => void) | null = null;
  /** Cancels the pending sweep (scheduled once SWEEP_FROM groups are kept). */
  private sweeping: (() => void) | null = null;
  /** Lines left out since the limiter was made (all groups). */
  suppressedTotal = 0;

  constructor(o: LogLimitOptions = {}) {
    this.windowMs = o.windowMs ?? 10_000;
    this.burst = o.burst ?? 5;
    this.maxGroups = o.maxGroups ?? 65_536;
    this.now = o.now ?? Date.now;
    this.after = o.after ?? ((ms, f) => {
      const t = setTimeout(f, ms);
      t.unref();
      return () => clearTimeout(t);
    });
  }

  /** Where summaries go (the logger that owns this limiter sets it). */
  onSuppressed(sink: (s: Suppressed) => void): void {
    this.sink = sink;
  }

  /** May this line be written? If not it is counted, and its group's summary comes at the end of the window. */
  admit(level: string, base: Record<string, unknown>, msg: string, fields: Record<string, unknown> | undefined): boolean {
    const reason = reasonOf(msg, fields);
    const nic = fields?.nic;
    let key = groupKey(level, base, nic, reason);
    const now = this.now();
    let g = this.groups.get(key);
    if (g && now - g.start >= this.windowMs) {
      this.end(key, g); // a window that ended without a timer (nothing was suppressed in it)
      g = undefined;
    }
    if (!g) {
      if (this.groups.size >= this.maxGroups) this.sweep(now);
      let group = { base, nic, reason };
      if (this.groups.size >= this.maxGroups) {
        // Too many kinds of line at once: the rest share one group per level.
        group = { base: {}, nic: undefined, reason: OVERFLOW };
        key = groupKey(level, group.base, group.nic, group.reason);
        g = this.groups.get(key);
      }
      if (!g) {
        g = { start: now, shown: 0, suppressed: 0, level, ...group, cancel: null };
        this.groups.set(key, g);
        this.scheduleSweep();
      }
    }
    if (g.shown < this.burst) {
      g.shown++;
      return true;
    }
    g.suppressed++;
    this.suppressedTotal++;
    if (!g.cancel) {
      const group = g;
      const k = key;
      g.cancel = this.after(Math.max(0, g.start + this.windowMs - now), () => {
        if (this.groups.get(k) === group) this.end(k, group);
      });
    }
    return false;
  }

  /** Write every pending summary now (the process is stopping). */
  flush(): void {
    for (const [k, g] of [...this.groups]) this.end(k, g);
    this.sweeping?.();
    this.sweeping = null;
  }

  /** With SWEEP_FROM groups or more, forget the ended ones a window from now (and again while as many are kept). */
  private scheduleSweep(): void {
    if (this.sweeping || this.groups.size < SWEEP_FROM) return;
    this.sweeping = this.after(this.windowMs, () => {
      this.sweeping = null;
      this.sweep(this.now());
      this.scheduleSweep();
    });
  }

  private end(key: string, g: Group): void {
    this.groups.delete(key);
    g.cancel?.();
    g.cancel = null;
    if (g.suppressed > 0) {
      const seconds = Math.max(1, Math.round(Math.min(this.now() - g.start, this.windowMs) / 1000));
      this.sink?.({ level: g.level, base: g.base, nic: g.nic, reason: g.reason, count: g.suppressed, seconds });
    }
  }

  /** Forget the groups whose window is over and that left nothing out. */
  private sweep(now: number): void {
    for (const [k, g] of this.groups) if (g.suppressed === 0 && now - g.start >= this.windowMs) this.groups.delete(k);
  }
}

/**
 * Why a line is written: an IKE line's `event` (its message names generations and SPIs), else the message with
 * its numbers blanked, so that 'no SA_ACK for generation 5' and '... 6' are one reason.
 */
function reasonOf(msg: string, fields: Record<string, unknown> | undefined): string {
  const ev = fields?.event;
  if (typeof ev === 'string') return ev;
  return msg.replace(/\d+/g, '#');
}

function groupKey(level: string, base: Record<string, unknown>, nic: unknown, reason: string): string {
  return JSON.stringify([level, base, nic ?? null, reason], (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}
