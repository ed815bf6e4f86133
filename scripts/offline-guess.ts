/**
 * The side-by-side of issue 18 (docs/IPMI.md, "What each path gives a passive observer"): what someone who captured
 * a NIC's traffic can do offline with a word list, on each management path.
 *
 *   node dist/scripts/offline-guess.js CAPTURE WORDLIST [--ike-port 500] [--secure-port 664] [--json]
 *
 * lanplus (UDP 623): every RAKP 1 + RAKP 2 pair is an offline password oracle (CVE-2013-4786, by design of RAKP):
 * RAKP 2's code is HMAC_Kuid over values all in the two datagrams, so each word is tested with one HMAC
 * (scripts/rakp-dictionary.ts). The script says which password it found and after how many guesses.
 *
 * Secure path (IKEv2 on the IKE port, ESP and sync frames on the secure port): it lists what travels in the clear.
 * IKE_SA_INIT carries proposals, Curve25519 public values, nonces and notifies; from IKE_AUTH on every message is one
 * Encrypted (SK) payload. The pre-shared key enters only the AUTH payload (RFC 7296 §2.15), which travels inside SK
 * under keys from the Diffie-Hellman exchange (§2.14), and the ESP and sync keys come from that exchange too (§2.17):
 * there is no cleartext value a guess could be checked against. The script counts cleartext AUTH payloads (the only
 * thing a guess could be tested on) and reports how many guesses it could test: none, for any word list.
 *
 * Needs tshark (to read the capture). A lab tool, never part of the NIC (firmware/ ships no attack).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { rakpHashInput, recoverRakpPassword } from './rakp-dictionary.js';
import { decodeHeader, decodePayloadChain } from '../protocol/ike/ike-message.js';
import { PAYLOAD } from '../protocol/ike/constants.js';

interface Datagram { frame: number; src: string; dst: string; payload: Uint8Array }

const EXCHANGES: Record<number, string> = { 34: 'IKE_SA_INIT', 35: 'IKE_AUTH', 36: 'CREATE_CHILD_SA', 37: 'INFORMATIONAL' };
const PAYLOAD_NAMES: Record<number, string> = Object.fromEntries(Object.entries(PAYLOAD).map(([k, v]) => [v, k]));

export interface RakpFinding { frames: [number, number]; console: string; bmc: string; user: string; hmac: 'sha1' | 'sha256'; status: number; password: string | null; tried: number; ms: number }
export interface SecureFindings {
  ike: { exchange: string; messages: number; cleartextPayloads: string[] }[];
  /** AUTH payloads outside SK: the only cleartext a PSK guess could be tested on. */
  cleartextAuth: number;
  espPackets: number;
  espSpis: string[];
  syncFrames: number;
  /** Guesses that could be checked against something in the capture. */
  testableGuesses: number;
}
export interface OfflineGuessReport { capture: string; words: number; lanplus: RakpFinding[]; secure: SecureFindings }

function readCapture(file: string): Datagram[] {
  const r = spawnSync('tshark', ['-r', file, '-Y', 'udp', '-T', 'fields', '-e', 'frame.number', '-e', 'ip.src', '-e', 'udp.srcport', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'udp.payload'], { encoding: 'utf8', timeout: 60_000 });
  if (r.error || r.status !== 0) throw new Error(`tshark could not read ${file}: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [frame, src, sport, dst, dport, hex] = l.split('\t');
    return { frame: Number(frame), src: `${src}:${sport}`, dst: `${dst}:${dport}`, payload: new Uint8Array(Buffer.from((hex ?? '').replace(/:/g, ''), 'hex')) };
  });
}

const port = (endpoint: string) => Number(endpoint.split(':').at(-1));
/** RMCP+ (RMCP class 7, session format 06h) payload type, or -1. */
const rmcpPlusType = (p: Uint8Array) => (p.length >= 16 && p[0] === 0x06 && (p[3] & 0x1f) === 0x07 && p[4] === 0x06 ? p[5] & 0x3f : -1);

export function offlineGuess(capture: string, words: string[], o: { ikePort?: number; securePort?: number } = {}): OfflineGuessReport {
  const ikePort = o.ikePort ?? 500;
  const securePort = o.securePort ?? 664;
  const dgrams = readCapture(capture);

  const lanplus: RakpFinding[] = [];
  dgrams.forEach((d, i) => {
    if (rmcpPlusType(d.payload) !== 0x12) return;
    const answer = dgrams.slice(i + 1).find((x) => x.src === d.dst && x.dst === d.src && rmcpPlusType(x.payload) === 0x13);
    if (!answer) return;
    const status = answer.payload[16 + 1];
    const base = { frames: [d.frame, answer.frame] as [number, number], console: d.src, bmc: d.dst, status };
    if (status !== 0) {
      // An unknown name gets an error and no code: nothing to test (what the BMC can do against this attack).
      lanplus.push({ ...base, user: Buffer.from(d.payload.subarray(16 + 28, 16 + 28 + d.payload[16 + 27])).toString('latin1'), hmac: 'sha1', password: null, tried: 0, ms: 0 });
      return;
    }
    const pair = { rakp1: d.payload, rakp2: answer.payload };
    const { user, hash } = rakpHashInput(pair);
    const t0 = performance.now();
    const hit = recoverRakpPassword(pair, words);
    lanplus.push({ ...base, user, hmac: hash, password: hit?.password ?? null, tried: hit?.tried ?? words.length, ms: performance.now() - t0 });
  });

  const ike = new Map<string, { messages: number; types: Set<string> }>();
  let cleartextAuth = 0;
  let espPackets = 0;
  let syncFrames = 0;
  const spis = new Set<string>();
  for (const d of dgrams) {
    const p = d.payload;
    if (port(d.src) === ikePort || port(d.dst) === ikePort) {
      let name = 'unreadable';
      const types = new Set<string>();
      try {
        const h = decodeHeader(p);
        name = EXCHANGES[h.exchange] ?? `exchange ${h.exchange}`;
        for (const pl of decodePayloadChain(h.nextPayload, p, 28, Math.min(h.length, p.length))) {
          types.add(PAYLOAD_NAMES[pl.type] ?? String(pl.type));
          if (pl.type === PAYLOAD.AUTH) cleartextAuth++;
        }
      } catch {
        types.add('(does not decode)');
      }
      const e = ike.get(name) ?? { messages: 0, types: new Set<string>() };
      e.messages++;
      for (const t of types) e.types.add(t);
      ike.set(name, e);
    } else if ((port(d.src) === securePort || port(d.dst) === securePort) && p.length >= 8) {
      const spi = Buffer.from(p.subarray(0, 4)).toString('hex');
      if (spi === 'ffffffff') syncFrames++;
      else {
        espPackets++;
        spis.add(`0x${spi}`);
      }
    }
  }
  return {
    capture,
    words: words.length,
    lanplus,
    secure: {
      ike: [...ike].map(([exchange, e]) => ({ exchange, messages: e.messages, cleartextPayloads: [...e.types].sort() })),
      cleartextAuth,
      espPackets,
      espSpis: [...spis].sort(),
      syncFrames,
      testableGuesses: cleartextAuth > 0 ? words.length : 0,
    },
  };
}

function render(r: OfflineGuessReport): string {
  const out: string[] = [`${r.capture}: ${r.words} words`, '', 'lanplus (UDP 623), RAKP 1 + RAKP 2 pairs:'];
  if (r.lanplus.length === 0) out.push('  none in the capture');
  for (const f of r.lanplus) {
    const where = `  frames ${f.frames[0]}/${f.frames[1]} ${f.console} -> ${f.bmc} user '${f.user}'`;
    if (f.status !== 0) out.push(`${where}: RAKP 2 status ${f.status.toString(16).padStart(2, '0')}h, no code to test`);
    else if (f.password !== null) out.push(`${where}, HMAC-${f.hmac.toUpperCase()}: password '${f.password}' found after ${f.tried} guesses (${f.ms.toFixed(1)} ms)`);
    else out.push(`${where}, HMAC-${f.hmac.toUpperCase()}: not in the word list (${f.tried} guesses, ${f.ms.toFixed(1)} ms)`);
  }
  const s = r.secure;
  out.push('', 'secure path (IKEv2 on the IKE port, ESP and sync frames on the secure port):');
  for (const e of s.ike) out.push(`  ${e.exchange}: ${e.messages} messages, in the clear: ${e.cleartextPayloads.join(', ')}`);
  if (s.ike.length === 0) out.push('  no IKEv2 message in the capture');
  out.push(`  ESP: ${s.espPackets} packets (SPIs ${s.espSpis.join(', ') || '-'}); sync frames: ${s.syncFrames}`);
  out.push(`  AUTH payloads in the clear: ${s.cleartextAuth}; guesses that can be tested: ${s.testableGuesses} of ${r.words}`);
  if (s.cleartextAuth === 0 && s.ike.length > 0) {
    out.push('  (the pre-shared key enters only AUTH, inside SK under keys from the Curve25519 exchange; ESP and sync keys come from it too)');
  }
  return out.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'ike-port': { type: 'string' }, 'secure-port': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  const [capture, wordlist] = positionals;
  if (values.help || !capture || !wordlist || positionals.length > 2) {
    process.stderr.write('usage: node dist/scripts/offline-guess.js CAPTURE WORDLIST [--ike-port 500] [--secure-port 664] [--json]\n');
    process.exit(values.help ? 0 : 2);
  }
  const words = readFileSync(wordlist, 'utf8').split('\n').map((w) => w.replace(/\r$/, '')).filter((w) => w.length > 0);
  const num = (v: string | undefined, def: number, name: string) => {
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) > 65535) throw new Error(`--${name} must be a UDP port, got '${v}'`);
    return Number(v);
  };
  const r = offlineGuess(capture, words, { ikePort: num(values['ike-port'], 500, 'ike-port'), securePort: num(values['secure-port'], 664, 'secure-port') });
  process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : render(r));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    process.stderr.write(`offline-guess: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
