/**
 * tshark for end-to-end tests: a live loopback capture that a test starts before its traffic and stops with
 * SIGINT, and field extraction from the capture file (`-T fields`). Recipes and their pitfalls:
 * ../shared/reference/tshark/README.md (§3 ESP on UDP/664 via `udpencap`, §4 AH via a Lua shim, no AH ICV check).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Is `name` an executable on PATH? (Tests skip with a clear message when a tool is missing.) */
export function hasBinary(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

/**
 * Wireshark's built-in AH dissector on UDP port 664 (tshark cannot be told `-d udp.port==664,ah`). The same
 * two lines as ../shared/reference/tshark/udp664_ah.lua, kept here so the tests do not depend on ../shared.
 */
export const UDP664_AH_LUA = `-- Register Wireshark's built-in "ah" dissector on UDP port 664 (tshark -X lua_script:udp664_ah.lua)
local ah = Dissector.get("ah")
DissectorTable.get("udp.port"):add(664, ah)
`;

/** Write the AH shim into `dir` and return its path. */
export function writeAhLua(dir: string): string {
  const p = join(dir, 'udp664_ah.lua');
  writeFileSync(p, UDP664_AH_LUA);
  return p;
}

/** A running `tshark -i lo -f FILTER -w FILE` (libpcap format). */
export class Capture {
  private stderr = '';
  private constructor(private readonly child: ChildProcess, readonly file: string) {
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
  }

  /**
   * Start capturing on lo and resolve once tshark says it is capturing and the file exists, plus `settleMs`
   * (dumpcap attaches its BPF filter a moment after it announces itself).
   */
  static async start(file: string, filter: string, timeoutMs = 15000, settleMs = 1000): Promise<Capture> {
    // Own process group: tshark runs dumpcap as a child, and a SIGKILL to tshark alone would orphan it.
    const child = spawn('tshark', ['-i', 'lo', '-f', filter, '-F', 'pcap', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    const cap = new Capture(child, file);
    const deadline = Date.now() + timeoutMs;
    while (!(/Capturing on/.test(cap.stderr) && existsSync(file))) {
      if (child.exitCode !== null) throw new Error(`tshark exited with ${child.exitCode} before capturing: ${cap.stderr}`);
      if (Date.now() > deadline) {
        cap.kill();
        throw new Error(`tshark did not start capturing in ${timeoutMs} ms: ${cap.stderr}`);
      }
      await sleep(50);
    }
    await sleep(settleMs);
    return cap;
  }

  /**
   * Stop with SIGINT (tshark flushes the file) and wait for the exit, bounded. `lingerMs` first lets dumpcap
   * take the last packets off the ring buffer (stopping right after the traffic lost the last exchanges).
   */
  async stop(lingerMs = 1000, timeoutMs = 5000): Promise<string> {
    await sleep(lingerMs);
    const c = this.child;
    if (c.exitCode === null && c.signalCode === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => this.kill(), timeoutMs);
        c.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        c.kill('SIGINT');
      });
    }
    return this.file;
  }

  /** For after/afterEach: never leave a capture running (tshark and its dumpcap, by process group). */
  kill(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* the group is gone already */
    }
  }
}

/** Run tshark to completion (bounded) and return stdout. */
export function tshark(args: string[], timeoutMs = 20000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('tshark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t = setTimeout(() => {
      c.kill('SIGKILL');
      reject(new Error(`tshark ${args.join(' ')} did not finish in ${timeoutMs} ms`));
    }, timeoutMs);
    c.once('exit', (code) => {
      clearTimeout(t);
      if (code !== 0) reject(new Error(`tshark exited with ${code}: ${err.replace(/^Running as user.*\n/m, '')}`));
      else resolve(out);
    });
  });
}

/** `tshark -r FILE OPTIONS -T fields -e F...`: one record per frame, field name -> value ('' when absent). */
export async function tsharkFields(file: string, options: string[], fields: string[]): Promise<Record<string, string>[]> {
  const out = await tshark(['-r', file, ...options, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])]);
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const cols = l.split('\t');
      return Object.fromEntries(fields.map((f, i) => [f, cols[i] ?? '']));
    });
}

export interface CapturedDatagram { frame: number; src: string; srcPort: number; dst: string; dstPort: number; payload: Uint8Array }

/** The outer UDP datagrams of a capture, in order (no decryption options, so only the outer UDP layer exists). */
export async function capturedDatagrams(file: string): Promise<CapturedDatagram[]> {
  const rows = await tsharkFields(file, [], ['frame.number', 'ip.src', 'udp.srcport', 'ip.dst', 'udp.dstport', 'udp.payload']);
  return rows.map((r) => ({
    frame: Number(r['frame.number']),
    src: r['ip.src'],
    srcPort: Number(r['udp.srcport']),
    dst: r['ip.dst'],
    dstPort: Number(r['udp.dstport']),
    payload: new Uint8Array(Buffer.from(r['udp.payload'].replace(/:/g, ''), 'hex')),
  }));
}

/** `-o uat:esp_sa:LINE` for every UAT line of a `mgmt-station keys --wireshark` file (comments skipped). */
export function espSaOptions(uatFileText: string): string[] {
  return uatFileText
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .flatMap((l) => ['-o', `uat:esp_sa:${l}`]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
