/**
 * What the two processes' Prometheus `/metrics` share (docs/METRICS.md): a registry with prom-client's default
 * process and Node metrics (`process_*`, `nodejs_*`, the names every Node dashboard knows) beside Lifeline's own
 * (`lifeline_*`), counters whose totals are read from the processes' own counters at scrape time, and the HTTP answer.
 * Loaded only by a process that serves metrics (the emulator on its first scrape, `mgmt-station serve` at start), so
 * the CLI never pays for prom-client.
 */
import type http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A registry with prom-client's default metrics (process CPU, memory, file descriptors, event-loop lag, GC, heap). */
export function newRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * A counter whose value is a total the process already keeps (a firmware counter summed over the fleet, a core's
 * count): set at each scrape, never incremented on the hot path. `set` is given every labelled total at once; a
 * label set it no longer names keeps no series. The totals must not go down (nic-totals.ts carries them over reboots).
 */
export class TotalCounter<L extends string> {
  readonly counter: Counter<L>;

  constructor(registry: Registry, name: string, help: string, readonly labelNames: readonly L[] = []) {
    this.counter = new Counter<L>({ name, help, labelNames, registers: [registry] });
  }

  set(values: Iterable<[Partial<Record<L, string>>, number]>): void {
    this.counter.reset();
    for (const [labels, v] of values) this.counter.inc(labels, v);
  }

  /** The one value of a counter without labels. */
  setValue(v: number): void {
    this.counter.reset();
    this.counter.inc(v);
  }
}

/** A gauge set at each scrape: `set` as TotalCounter's (every label set at once), `setValue` without labels. */
export class ScrapeGauge<L extends string> {
  readonly gauge: Gauge<L>;

  constructor(registry: Registry, name: string, help: string, readonly labelNames: readonly L[] = []) {
    this.gauge = new Gauge<L>({ name, help, labelNames, registers: [registry] });
  }

  set(values: Iterable<[Partial<Record<L, string>>, number]>): void {
    this.gauge.reset();
    for (const [labels, v] of values) this.gauge.set(labels, v);
  }

  setValue(v: number): void {
    this.gauge.set(v);
  }
}

/** `[{ [label]: key }, count]` for every entry of a count by key (a reason, a region): TotalCounter.set's input. */
export function byLabel<L extends string>(label: L, counts: Readonly<Record<string, number>>, keys: readonly string[] = []): [Partial<Record<L, string>>, number][] {
  const out = new Map<string, number>(keys.map((k) => [k, 0]));
  for (const k in counts) out.set(k, (out.get(k) ?? 0) + counts[k]);
  return [...out].map(([k, v]) => [{ [label]: k } as Partial<Record<L, string>>, v]);
}

/** Answer a scrape: the registry's text (exposition format 0.0.4) with its content type. */
export async function sendMetrics(res: http.ServerResponse, registry: Registry, update?: () => void): Promise<void> {
  update?.();
  const text = await registry.metrics();
  res.writeHead(200, { 'content-type': registry.contentType });
  res.end(text);
}
