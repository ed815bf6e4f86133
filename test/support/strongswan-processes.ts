/**
 * strongSwan interop with Lifeline's real processes (issue 15 criterion 1), run by runInterop() (strongswan.ts)
 * inside a private network and mount namespace like the pure-machine scenarios:
 *
 *  - 'charon-to-nic': charon initiates to the host agent of NIC nic-1 in a running `nic-emulator` (127.0.1.1:500,
 *    the PSK written as the NIC's trust anchor through the control API): IKE SA, Child SA written and committed in
 *    the NIC's EEPROM (plain IKEv2: charon does not announce the commit), Child SA rekeys, charon's IKE SA rekey,
 *    charon deletes the Child SA, and the NIC's host agent deletes the IKE SA (a new trust anchor ends the IKE SAs
 *    made under the old one).
 *  - 'station-to-charon': `mgmt-station enroll` and `refresh` (forwarded to `mgmt-station serve`, which holds the
 *    IKE SA) initiate to charon standing in for nic-1's host (127.0.1.1:500; the NIC's own host is off, so its agent
 *    does not answer): IKE SA, Child SA, the station's Child SA rekeys and IKE SA rekeys (serve
 *    --ike-rekey-interval 1) with its deletes of the old SAs, charon's Child SA rekey and IKE SA rekey accepted,
 *    charon deletes the IKE SA, and the next refresh makes a new one.
 *
 * Prints one JSON report (InteropReport) on stdout; every process is stopped before it exits.
 */
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, type StationProcess } from './lab.js';
import { SWANCTL, analyseCapture, namespaceUp, run, sleep, startCharon, startTshark, stop, strongswanConf, type InteropReport, type Scenario } from './strongswan.js';

const NIC_ADDRESS = '127.0.1.1';
const CHARON_PORT = 1500;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function swanctlConf(scenario: Scenario, psk: Buffer): string {
  const toNic = scenario === 'charon-to-nic';
  // charon-to-nic: charon is the station (initiator) and talks to the NIC's host agent on 127.0.1.1:500.
  // station-to-charon: charon is nic-1's host (responder) on 127.0.1.1:500; the station binds 127.0.0.1.
  const conn = toNic
    ? { local: '127.0.0.1', remote: `${NIC_ADDRESS}\n    remote_port = 500`, me: 'station.lab', peer: 'nic-1.host.lifeline', localTs: 'dynamic[udp]', remoteTs: 'dynamic[udp/664]', ikeRekey: '3s', childRekey: '60s' }
    : { local: NIC_ADDRESS, remote: '127.0.0.1', me: 'nic-1.host.lifeline', peer: 'station-1.station.lifeline', localTs: 'dynamic[udp/664]', remoteTs: 'dynamic[udp]', ikeRekey: '60s', childRekey: '60s' };
  return `connections {
  lab {
    version = 2
    local_addrs = ${conn.local}
    remote_addrs = ${conn.remote}
    proposals = aes128gcm16-prfsha256-curve25519
    rekey_time = ${conn.ikeRekey}
    over_time = 30s
    rand_time = 0s
    reauth_time = 0
    dpd_delay = 0
    mobike = no
    fragmentation = no
    local {
      auth = psk
      id = ${conn.me}
    }
    remote {
      auth = psk
      id = ${conn.peer}
    }
    children {
      nic {
        mode = transport
        esp_proposals = aes128gcm16-curve25519-noesn
        local_ts = ${conn.localTs}
        remote_ts = ${conn.remoteTs}
        rekey_time = ${conn.childRekey}
        life_time = 120s
        rand_time = 0s
        start_action = none
      }
    }
  }
}
secrets {
  ike-lab {
    id-1 = ${conn.me}
    id-2 = ${conn.peer}
    secret = 0x${psk.toString('hex')}
  }
}
`;
}

interface NicSa { generation: number; toNicSpi: number; fromNicSpi: number }

async function nicStatus(lab: Lab): Promise<{ sa: { active: NicSa | null }; hostAgent: { running: boolean; ikeRekeys: number; sessions: string[]; drops: Record<string, number>; received: number; sent: number } }> {
  return lab.nic('nic-1');
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

/** charon initiates to a NIC's host agent in a running nic-emulator. */
async function charonToNic(lab: Lab, dir: string, env: NodeJS.ProcessEnv, report: InteropReport, psk: Buffer): Promise<void> {
  const facts = report.effects;
  const active = async (): Promise<NicSa | null> => (await nicStatus(lab)).sa.active;
  await run(SWANCTL, ['--initiate', '--child', 'nic', '--timeout', '10'], env);
  await until('the NIC to hold the Child SA', async () => (await active())?.generation === 1, 5000);
  const first = (await active())!;
  facts.push(`nic active gen ${first.generation} toNic ${hex8(first.toNicSpi)} fromNic ${hex8(first.fromNicSpi)}`);
  // charon rekeys a Child SA when the kernel reports its soft lifetime (XFRM_MSG_EXPIRE), which the shim does not
  // emulate: ask for it over VICI. The IKE SA rekey is charon's own timer (rekey_time 3 s).
  await run(SWANCTL, ['--rekey', '--child', 'nic'], env);
  await until('a Child SA rekey from charon in the NIC', async () => (await active())?.generation === 2, 5000);
  const second = (await active())!;
  facts.push(`nic active gen ${second.generation} toNic ${hex8(second.toNicSpi)} fromNic ${hex8(second.fromNicSpi)}`);
  await until('an IKE SA rekey from charon', async () => (await nicStatus(lab)).hostAgent.ikeRekeys >= 1, 8000);
  await run(SWANCTL, ['--rekey', '--child', 'nic'], env); // and once more on the rekeyed IKE SA
  await until('a Child SA rekey on the rekeyed IKE SA', async () => (await active())?.generation === 3, 5000);
  await run(SWANCTL, ['--terminate', '--child', 'nic', '--timeout', '5'], env); // charon deletes the Child SA
  await sleep(300);
  facts.push(`nic active gen ${(await active())?.generation} after charon's D(ESP)`); // the NIC keeps it (its EEPROM)
  // Our side deletes the IKE SA: a new trust anchor (the same key written again) ends the agent's IKE SAs.
  await lab.control.post('/v1/nics/nic-1/trust-anchor', { psk: psk.toString('hex') });
  await until("charon to take the host agent's D(IKE)", () => /received DELETE for IKE_SA lab\[\d+\]/.test(readCharonLog(dir)), 5000);
  const st = await nicStatus(lab);
  facts.push(`hostAgent ikeRekeys ${st.hostAgent.ikeRekeys} received ${st.hostAgent.received} sent ${st.hostAgent.sent}`);
  report.drops = st.hostAgent.drops;
}

/** `mgmt-station enroll`/`refresh` through `mgmt-station serve` initiate to charon standing in for the NIC's host. */
async function stationToCharon(lab: Lab, dir: string, env: NodeJS.ProcessEnv, report: InteropReport, psk: Buffer, daemon: StationProcess): Promise<void> {
  const facts = report.effects;
  const pskFile = join(dir, 'psk.hex');
  writeFileSync(pskFile, psk.toString('hex') + '\n', { mode: 0o600 });
  const sas = async (): Promise<string> => {
    const l = await lab.station(['list']);
    return (l[0]?.sas ?? []).map((s: { generation: number; state: string }) => `${s.generation}:${s.state}`).join(' ');
  };
  const activeGen = async (): Promise<number> => Number(/(\d+):active/.exec(await sas())?.[1] ?? 0);
  const verb = async (args: string[]): Promise<Record<string, unknown>> => {
    const r = await lab.run([...args, '--json', '--timeout', '8000'], { timeoutMs: 30_000 });
    facts.push(`mgmt-station ${args.join(' ')}: exit ${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`);
    if (r.code !== 0) throw new Error(`mgmt-station ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.json;
  };
  await verb(['enroll', 'nic-1', '--psk-file', pskFile]);
  facts.push(`after enroll: ${await sas()}`);
  // serve --ike-rekey-interval 1: the held IKE SA is older than that, so each refresh rekeys it (§2.18) and then
  // rekeys the Child SA (CREATE_CHILD_SA { N(REKEY_SA) }), deleting the old SAs.
  const r1 = await verb(['refresh', 'nic-1']);
  facts.push(`refresh 1 exchange ${r1.exchange}; ${await sas()}`);
  const r2 = await verb(['refresh', 'nic-1']);
  facts.push(`refresh 2 exchange ${r2.exchange}; ${await sas()}`);
  // charon's own Child SA rekey: the station answers, stores the SA, and uses it once charon deletes the old one.
  const before = await activeGen();
  await run(SWANCTL, ['--rekey', '--child', 'nic'], env);
  await until("the station to take charon's Child SA rekey", async () => (await activeGen()) > before, 8000);
  facts.push(`after charon's Child SA rekey: ${await sas()}`);
  // charon's own IKE SA rekey.
  await run(SWANCTL, ['--rekey', '--ike', 'lab'], env);
  await until("the station to take charon's IKE SA rekey", () => (daemon.stdout + daemon.stderr).split('IKE SA rekeyed').length - 1 >= 3, 8000);
  // charon deletes the IKE SA; the next refresh makes a new one.
  await run(SWANCTL, ['--terminate', '--ike', 'lab', '--timeout', '5'], env);
  await sleep(300);
  const r3 = await verb(['refresh', 'nic-1']);
  facts.push(`refresh 3 exchange ${r3.exchange}; ${await sas()}`);
  const logs = (daemon.stdout + daemon.stderr).split('\n').filter((l) => /IKE|nic-1/.test(l));
  facts.push(...logs.map((l) => `daemon: ${l}`));
}

function readCharonLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'charon.log'), 'utf8');
  } catch {
    return '';
  }
}

async function processLab(scenario: Scenario): Promise<InteropReport> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-swanp-'));
  let charon: ChildProcess | null = null;
  let tshark: ChildProcess | null = null;
  const lab = new Lab(`swan-${scenario}`);
  const report: InteropReport = { scenario, ok: false, effects: [], drops: {}, charonLog: '', packets: 0, malformed: 0, exchanges: {}, ms: 0 };
  const psk = randomBytes(32);
  try {
    namespaceUp(dir);
    const toNic = scenario === 'charon-to-nic';
    writeFileSync(join(dir, 'strongswan.conf'), strongswanConf(dir, toNic ? CHARON_PORT : 500, toNic ? CHARON_PORT + 13000 : 4500));
    writeFileSync(join(dir, 'swanctl.conf'), swanctlConf(scenario, psk), { mode: 0o600 });
    const env = { STRONGSWAN_CONF: join(dir, 'strongswan.conf') };
    tshark = await startTshark(join(dir, 'ike.pcap'));
    // The NIC: its host up with the PSK as trust anchor (charon-to-nic), or its host off so that charon answers
    // for it on its IKE address (station-to-charon).
    await lab.startEmulator(['--nics', '1', '--first-address', NIC_ADDRESS, ...(toNic ? [] : ['--host-state', 'off'])]);
    if (toNic) {
      await lab.control.post('/v1/nics/nic-1/trust-anchor', { psk: psk.toString('hex') });
      await until('the host agent', async () => (await nicStatus(lab)).hostAgent.running, 5000);
    }
    charon = await startCharon(dir, env);
    if (toNic) await charonToNic(lab, dir, env, report, psk);
    else {
      const daemon = await lab.startStation('station-1', ['--poll-interval', '60000', '--lease-ms', '120000', '--ike-rekey-interval', '1']);
      await stationToCharon(lab, dir, env, report, psk, daemon);
    }
    report.ok = true;
  } catch (e) {
    report.error = (e as Error).message;
  } finally {
    await lab.cleanup().catch(() => undefined);
    await stop(charon, 'SIGTERM');
    await sleep(200);
    await stop(tshark, 'SIGINT');
    report.charonLog = readCharonLog(dir);
    analyseCapture(join(dir, 'ike.pcap'), scenario === 'charon-to-nic' ? [500, CHARON_PORT] : [500], report);
    rmSync(dir, { recursive: true, force: true });
    report.ms = Date.now() - t0;
  }
  return report;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  processLab(process.argv[2] as Scenario).then((r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  });
}
