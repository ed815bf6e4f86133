/**
 * mgmt-station: the management station's command line. `mgmt-station --help` lists the verbs;
 * README "CLI reference" documents them with their exit codes.
 */
import { parseArgs } from 'node:util';
import { randomBytes, randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { StationContext, DEFAULT_STORE, DEFAULT_KEY_FILE } from './context.js';
import { ControlClient, DEFAULT_CONTROL } from '../lib/control-client.js';
import { EXIT, fail, printJson } from '../lib/cli.js';
import { LifelineError, UsageError } from '../firmware/errors.js';
import { saToJson } from '../lib/sa-json.js';
import { espSaUatLines } from './wireshark-keys.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../firmware/sa.js';
import type { CommandKind, ReadKind, RequestResult } from './nic-session.js';
import { asfTypeName, ASF_TYPE_CODE } from '../firmware/asf.js';

const PROG = 'mgmt-station';

const HELP = `Usage: mgmt-station <command> [options]

Secure commands (ESP on UDP 664, retransmitted on loss; one line on stdout, or JSON with --json):
  ping NIC                  ASF Presence Ping -> Pong
  state NIC                 ASF System State (the host's S-state)
  capabilities NIC          ASF Capabilities
  reset NIC | power-up NIC | power-down NIC | power-cycle NIC
                            ASF power commands; done = the NIC acknowledged it and the outcome is stored

Keys and NICs:
  sa manual NIC             manual keying (RFC 4301 §4.5): create an SA, install it in the NIC through the
                            emulator's control API, keep it in the store
      [--emulator HOST:PORT] [--policy esp|esp+ah] [--transform aes-gcm-16|chacha20-poly1305] [--key-bits 128|256]
  list [--json]             NICs this station knows, with their SAs
  keys --wireshark FILE     write esp_sa UAT lines for every SA held (see README "Checking packets with tshark")
  log NIC [--json]          the NIC's command log with outcomes

Common options:
  --store URL               sqlite:FILE (default ${DEFAULT_STORE}) or postgres://...
  --cluster-key FILE        32-byte cluster key file, mode 0600 (default ${DEFAULT_KEY_FILE}, created on first
                            use); or set LIFELINE_CLUSTER_KEY=<64 hex>
  --id NAME                 this station's id in the cluster (default station-1)
  --lease-ms MS             NIC ownership lease (default 10000)
  --timeout MS              answer timeout for secure commands (default 3000)
  --emulator HOST:PORT      the emulator control API, for manual keying (default ${DEFAULT_CONTROL})
  --json                    machine-readable output
  -h, --help                this help

Exit codes: 0 ok, 1 operation failed (timeout, refused), 2 usage error, 3 store/emulator unreachable, 4 internal.`;

const READS: Record<string, ReadKind> = { ping: 'presence-ping', state: 'system-state-request', capabilities: 'capabilities-request' };
const COMMANDS: readonly CommandKind[] = ['reset', 'power-up', 'power-down', 'power-cycle'];

const SYSTEM_STATE_NAMES: Record<number, string> = {
  0: 'S0 working', 1: 'S1 sleeping', 2: 'S2 sleeping', 3: 'S3 sleeping (suspend to RAM)', 4: 'S4 suspend to disk',
  5: 'S5 soft-off', 6: 'S4/S5 soft-off', 7: 'G3 mechanical off', 8: 'sleeping S1-S3', 9: 'G1 sleeping',
  10: 'S5 override', 11: 'legacy on', 12: 'legacy off', 14: 'unknown',
};

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      'cluster-key': { type: 'string' },
      id: { type: 'string' },
      'lease-ms': { type: 'string' },
      timeout: { type: 'string' },
      emulator: { type: 'string' },
      policy: { type: 'string' },
      transform: { type: 'string' },
      'key-bits': { type: 'string' },
      wireshark: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const verb = positionals[0];
  if (values.help || !verb || verb === 'help') {
    process.stdout.write(HELP + '\n');
    process.exit(verb || values.help ? EXIT.OK : EXIT.USAGE);
  }
  const json = values.json === true;
  const num = (v: string | undefined, def: number, name: string) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError('E_USAGE', `--${name} must be a positive whole number, got '${v}'`);
    return n;
  };
  const timeoutMs = num(values.timeout, 3000, 'timeout');
  const ctx = await StationContext.open({
    store: values.store ?? process.env.LIFELINE_STORE ?? DEFAULT_STORE,
    keyFile: values['cluster-key'] ?? DEFAULT_KEY_FILE,
    stationId: values.id ?? 'station-1',
    leaseMs: num(values['lease-ms'], 10000, 'lease-ms'),
    createKey: true,
  });
  try {
    if (READS[verb] || (COMMANDS as readonly string[]).includes(verb)) {
      const nic = positionals[1];
      if (!nic) throw new UsageError('E_USAGE', `usage: mgmt-station ${verb} NIC`);
      const s = await ctx.session(nic);
      const r = READS[verb] ? await s.read(READS[verb], timeoutMs) : await s.command(verb as CommandKind, timeoutMs);
      if (json) printJson({ ok: true, ...r, rttMs: Math.round(r.rttMs * 1000) / 1000 });
      else process.stdout.write(describe(r) + '\n');
      return;
    }
    switch (verb) {
      case 'sa': {
        if (positionals[1] !== 'manual' || !positionals[2]) throw new UsageError('E_USAGE', 'usage: mgmt-station sa manual NIC');
        const nicId = positionals[2];
        const emu = ControlClient.parse(values.emulator ?? DEFAULT_CONTROL);
        const st = await emu.get<{ id: string; address: string; ports: { clear: number; secure: number; ike: number } }>(`/v1/nics/${encodeURIComponent(nicId)}`);
        const sa = manualSa(
          (values.policy ?? 'esp') as SecurityPolicy,
          (values.transform ?? 'aes-gcm-16') as EspTransform,
          num(values['key-bits'], 128, 'key-bits'),
        );
        const existing = await ctx.store.getNic(st.id);
        await ctx.store.putNic({
          id: st.id, address: st.address, securePort: st.ports.secure, clearPort: st.ports.clear, ikePort: st.ports.ike,
          psk: existing?.psk ?? new Uint8Array(randomBytes(32)), enrolledAt: existing?.enrolledAt ?? ctx.now(), meta: { ...(existing?.meta ?? {}), emulator: `${emu.host}:${emu.port}` },
        });
        const fence = await ctx.fence(st.id);
        const { generation } = await emu.post<{ generation: number }>(`/v1/nics/${encodeURIComponent(st.id)}/sa`, { sa: saToJson(sa) });
        const installed = { ...sa, generation };
        await ctx.store.putSa(st.id, { pair: installed, state: 'pending', ike: null }, ctx.now(), fence);
        await ctx.store.activateSa(st.id, generation, ctx.now(), fence);
        if (json) printJson({ ok: true, nic: st.id, generation, policy: sa.policy, transform: sa.transform, toNicSpi: sa.toNic.spi, fromNicSpi: sa.fromNic.spi });
        else process.stdout.write(`${st.id}: manual SA generation ${generation} installed (${sa.transform}, ${sa.policy}, SPI to NIC 0x${sa.toNic.spi.toString(16)}, from NIC 0x${sa.fromNic.spi.toString(16)})\n`);
        return;
      }
      case 'list': {
        const out = [];
        for (const n of await ctx.store.listNics()) {
          const sas = await ctx.store.listSas(n.id);
          const lease = await ctx.store.getLease(n.id);
          out.push({
            id: n.id, address: n.address, ports: { clear: n.clearPort, secure: n.securePort, ike: n.ikePort },
            owner: lease?.owner ?? null, epoch: lease?.epoch ?? 0,
            sas: sas.filter((s) => s.state !== 'retired').map((s) => ({ generation: s.pair.generation, state: s.state, origin: s.pair.origin, policy: s.pair.policy, transform: s.pair.transform })),
          });
        }
        if (json) return printJson(out);
        for (const n of out) {
          const sas = n.sas.map((s) => `${s.generation}:${s.state}`).join(' ') || 'none';
          process.stdout.write(`${n.id.padEnd(8)} ${n.address}:${n.ports.secure}  owner=${n.owner ?? '-'} epoch=${n.epoch}  SAs ${sas}\n`);
        }
        return;
      }
      case 'keys': {
        const file = values.wireshark;
        if (!file) throw new UsageError('E_USAGE', 'usage: mgmt-station keys --wireshark FILE');
        const lines = ['# esp_sa UAT lines written by mgmt-station (Wireshark 4.0, 8 columns); keys are secrets'];
        let n = 0;
        for (const nic of await ctx.store.listNics()) {
          for (const s of await ctx.store.listSas(nic.id)) {
            if (s.state === 'retired') continue;
            lines.push(...espSaUatLines(nic, s.pair));
            n++;
          }
        }
        writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 });
        if (json) printJson({ ok: true, file, sas: n });
        else process.stdout.write(`wrote ${n} SA(s) to ${file}\n`);
        return;
      }
      case 'log': {
        const nic = positionals[1];
        if (!nic) throw new UsageError('E_USAGE', 'usage: mgmt-station log NIC');
        const cmds = await ctx.store.listCommands(nic);
        if (json) return printJson(cmds);
        for (const c of cmds) process.stdout.write(`${c.index} ${new Date(c.time).toISOString()} ${c.command} seq=${c.rmcpSeq} tag=${c.asfTag} ${c.outcome} by ${c.outcomeStation}@${c.outcomeEpoch}\n`);
        return;
      }
      default:
        throw new UsageError('E_USAGE', `unknown command '${verb}'; run 'mgmt-station --help'`);
    }
  } finally {
    await ctx.close();
  }
}

function describe(r: RequestResult): string {
  const ms = r.rttMs.toFixed(2);
  const m = r.response;
  const base = `${r.nic}: SA ${r.generation}, ${ms} ms${r.attempts > 1 ? `, ${r.attempts} attempts` : ''}`;
  switch (m.type) {
    case 'presence-pong':
      return `pong from ${base}: entities 0x${m.supportedEntities.toString(16)} interactions 0x${m.supportedInteractions.toString(16)}`;
    case 'system-state-response':
      return `${r.nic}: system state ${m.systemState} (${SYSTEM_STATE_NAMES[m.systemState] ?? 'reserved'}), watchdog ${m.watchdogExpired ? 'expired' : 'ok'} (${base})`;
    case 'capabilities-response':
      return `${r.nic}: capabilities special 0x${m.specialCommands.toString(16)} system 0x${m.systemCapabilities.toString(16).padStart(2, '0')} firmware 0x${m.firmwareCapabilities.toString(16)} (${base})`;
    case 'rmcp-ack':
      return `${r.request} acknowledged by ${base} (command #${r.command?.index}, rmcp seq ${r.command?.rmcpSeq}, tag ${r.command?.tag})`;
    default:
      return `${r.nic}: ${asfTypeName(ASF_TYPE_CODE[m.type])} (${base})`;
  }
}

function manualSa(policy: SecurityPolicy, transform: EspTransform, keyBits: number): SaPair {
  if (policy !== 'esp' && policy !== 'esp+ah') throw new UsageError('E_USAGE', `--policy must be esp or esp+ah`);
  if (transform !== 'aes-gcm-16' && transform !== 'chacha20-poly1305') throw new UsageError('E_USAGE', `--transform must be aes-gcm-16 or chacha20-poly1305`);
  if (transform === 'aes-gcm-16' && keyBits !== 128 && keyBits !== 256) throw new UsageError('E_USAGE', `--key-bits must be 128 or 256`);
  const keyLen = transform === 'aes-gcm-16' ? keyBits / 8 + 4 : 36;
  const spi = () => randomInt(0x1000, 0xfffffffe);
  const dir = () => ({
    spi: spi(),
    encKey: new Uint8Array(randomBytes(keyLen)),
    ahSpi: policy === 'esp+ah' ? spi() : 0,
    ahKey: policy === 'esp+ah' ? new Uint8Array(randomBytes(32)) : new Uint8Array(0),
  });
  return { generation: 0, transform, esn: false, policy, origin: 'manual', toNic: dir(), fromNic: dir() };
}

main(process.argv.slice(2)).catch((e) => fail(PROG, e instanceof LifelineError ? e : e, process.argv.includes('--json')));
