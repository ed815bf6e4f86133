/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for the /metrics tests: it throws on the
 * first line that a scraper could misread, and returns the families with their samples. Checked: only `# HELP` and
 * `# TYPE` comments, each at most once per family and before its samples; metric and label names; label values quoted
 * with only \\, \" and \n escaped; a label name at most once per sample, none reserved (`__`); values that parse as
 * Go floats (+Inf, -Inf, NaN in any case); a family's samples contiguous; no series twice; counters not negative; histograms with
 * ascending `le` buckets whose counts never go down and end at +Inf = _count; the text ends with a newline.
 */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample { name: string; labels: Record<string, string>; value: number }
export interface Family { name: string; type: MetricType; help: string | null; samples: Sample[] }

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export class PromTextError extends Error {
  constructor(line: number, text: string, why: string) {
    super(`line ${line}: ${why}: ${JSON.stringify(text.slice(0, 160))}`);
  }
}

/** A sample value as Prometheus reads it (Go's strconv.ParseFloat: NaN and Inf in any case, e.g. prom-client's `Nan`). */
function parseValue(s: string): number {
  const l = s.toLowerCase();
  if (l === 'nan') return NaN;
  if (l === '+inf' || l === 'inf' || l === '+infinity' || l === 'infinity') return Infinity;
  if (l === '-inf' || l === '-infinity') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`not a float: ${s}`);
  return Number(s);
}

/** `{a="x",b="y"}` from position `i` of `line` (at the '{'): the labels and the index after the '}'. */
function parseLabels(line: string, i: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++; // '{'
  while (line[i] !== '}') {
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
    if (!m) throw new Error('bad label name');
    const name = m[0];
    if (name.startsWith('__')) throw new Error(`reserved label name ${name}`);
    if (Object.hasOwn(labels, name)) throw new Error(`label ${name} twice`);
    i += name.length;
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`label ${name} not followed by ="`);
    i += 2;
    let v = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new Error(`unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = line[i + 1];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new Error(`bad escape \\${e ?? ''} in label ${name}`);
        i += 2;
      } else {
        v += c;
        i++;
      }
    }
    labels[name] = v;
    i++; // closing quote
    if (line[i] === ',') i++;
    else if (line[i] !== '}') throw new Error(`expected , or } after label ${name}`);
  }
  return { labels, end: i + 1 };
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

const seriesKey = (s: Sample) => `${s.name}{${Object.keys(s.labels).sort().map((k) => `${k}=${JSON.stringify(s.labels[k])}`).join(',')}}`;

export function parsePromText(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | null = null;
  const closed = new Set<string>();
  const typed = new Set<string>();
  const lines = text.split('\n');
  lines.pop(); // after the final newline
  lines.forEach((line, idx) => {
    const n = idx + 1;
    const fail = (why: string): never => {
      throw new PromTextError(n, line, why);
    };
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) fail('a comment other than # HELP or # TYPE');
      const [, kind, name, rest] = m!;
      if (!METRIC_NAME.test(name)) fail('bad metric name');
      if (closed.has(name)) fail(`family ${name} declared again after other families`);
      let f = families.get(name);
      if (!f) {
        if (current && current.name !== name) closed.add(current.name);
        f = { name, type: 'untyped', help: null, samples: [] };
        families.set(name, f);
      }
      current = f;
      if (kind === 'HELP') {
        if (f.help !== null) fail(`second HELP for ${name}`);
        f.help = rest ?? '';
        if (/\\[^\\n]/.test(f.help)) fail('HELP escapes only \\\\ and \\n');
      } else {
        if (typed.has(name)) fail(`second TYPE for ${name}`);
        if (f.samples.length > 0) fail(`TYPE for ${name} after its samples`);
        if (!TYPES.has(rest ?? '')) fail(`unknown type ${rest}`);
        f.type = rest as MetricType;
        typed.add(name);
      }
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nm) fail('bad metric name');
    const name = nm![0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') {
      try {
        ({ labels, end: i } = parseLabels(line, i));
      } catch (e) {
        fail((e as Error).message);
      }
    }
    if (line[i] !== ' ') fail('no space before the value');
    const parts = line.slice(i + 1).split(' ');
    if (parts.length < 1 || parts.length > 2 || parts[0] === '') fail('expected VALUE [TIMESTAMP]');
    let value = 0;
    try {
      value = parseValue(parts[0]);
    } catch (e) {
      fail((e as Error).message);
    }
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) fail('bad timestamp');
    let f = familyOf(name, families);
    if (!f) {
      // An untyped sample without a declaration is legal; it makes its own family.
      if (current) closed.add(current.name);
      f = { name, type: 'untyped', help: null, samples: [] };
      families.set(name, f);
    }
    if (closed.has(f.name)) fail(`samples of ${f.name} are not contiguous`);
    if (current && current !== f) {
      closed.add(current.name);
    }
    current = f;
    const s: Sample = { name, labels, value };
    const key = seriesKey(s);
    if (seen.has(key)) fail(`series twice: ${key}`);
    seen.add(key);
    if (f.type === 'counter' && !(value >= 0)) fail('a counter below 0 (or NaN)');
    if (f.type === 'histogram' && name.endsWith('_bucket') && !Object.hasOwn(labels, 'le')) fail('a bucket without le');
    f.samples.push(s);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name === `${f.name}_bucket`) g.buckets.push([parseValue(le), s.value]);
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else throw new Error(`histogram ${f.name}: unexpected sample ${s.name}`);
  }
  for (const [key, g] of groups) {
    const where = `histogram ${f.name} ${key}`;
    if (g.count === undefined || g.sum === undefined) throw new Error(`${where}: no _count or _sum`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i][0] > g.buckets[i - 1][0])) throw new Error(`${where}: le not ascending`);
      if (g.buckets[i][1] < g.buckets[i - 1][1]) throw new Error(`${where}: bucket counts go down`);
    }
    const last = g.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    if (last[1] !== g.count) throw new Error(`${where}: +Inf bucket ${last[1]} != _count ${g.count}`);
  }
}

/** The value of one series (name and exactly these labels); undefined when absent. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = seriesKey({ name, labels, value: 0 });
  for (const f of families.values()) for (const s of f.samples) if (seriesKey(s) === want) return s.value;
  return undefined;
}

/** The sum of a family's samples named `name` (every label set). */
export function sampleSum(families: Map<string, Family>, name: string): number {
  let sum = 0;
  for (const f of families.values()) for (const s of f.samples) if (s.name === name) sum += s.value;
  return sum;
}

/** Every series (sample) whose name starts with `prefix`. */
export function seriesCount(families: Map<string, Family>, prefix: string): number {
  let n = 0;
  for (const f of families.values()) for (const s of f.samples) if (s.name.startsWith(prefix)) n++;
  return n;
}

/**
 * Lifeline's naming rules (docs/METRICS.md): every family of ours starts with lifeline_, has HELP text, counters end
 * in _total, histograms in a base unit (_seconds), and no label is `nic` or `id` (nothing per NIC).
 */
export function checkLifelineConventions(families: Map<string, Family>): void {
  for (const f of families.values()) {
    if (!f.name.startsWith('lifeline_')) continue;
    if (!f.help) throw new Error(`${f.name}: no HELP`);
    if (f.type === 'untyped') throw new Error(`${f.name}: no TYPE`);
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`${f.name}: a counter not ending in _total`);
    if (f.type !== 'counter' && f.name.endsWith('_total')) throw new Error(`${f.name}: _total on a ${f.type}`);
    if (f.type === 'histogram' && !f.name.endsWith('_seconds')) throw new Error(`${f.name}: a histogram not in seconds`);
    for (const s of f.samples) for (const l of Object.keys(s.labels)) if (l === 'nic' || l === 'id') throw new Error(`${f.name}: a per-NIC label ${l}`);
  }
}

/** `promtool check metrics` of `text` (Debian's prometheus package); null when promtool is not installed. */
export async function promtoolCheck(text: string): Promise<{ code: number | null; output: string } | null> {
  const { spawn, spawnSync } = await import('node:child_process');
  if (spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error) return null;
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 10000);
    p.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    p.stdin.end(text);
  });
}
