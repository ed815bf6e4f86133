/**
 * Where each emulated NIC listens.
 *  - address-per-NIC (default): NIC i gets its own address with the standard ports
 *    (623 clear, 664 secure, 500 IKE), so FreeIPMI `rmcpping`, which always targets port 623, works unchanged.
 *    Addresses count up from --first-address (default 127.0.1.1), skipping .0 and .255, within its /8. Loopback
 *    addresses (127.x.y.z) are all this host's on Linux; any other (a lab host's NICs reachable from a station
 *    on another host, e.g. 10.77.1.1) must be assigned to an interface first (`ip addr add 10.77.1.1/16 dev eth1`).
 *    Ports below 1024 need root or `setcap cap_net_bind_service=+ep $(which node)`.
 *  - port-per-NIC (--port-base P): every NIC on one address; NIC i (1-based) uses P+3(i-1) clear,
 *    P+3(i-1)+1 secure, P+3(i-1)+2 IKE. No privileges needed (like VirtualBMC's one-port-per-BMC).
 *
 * NIC ids: `nic-1`, `nic-2`, ... by default; with --id-prefix P, `P-nic-1`, ... so that NICs of several emulators
 * (lab hosts) can be enrolled into one station, whose store keys NICs by id.
 */
import { UsageError } from '../common/errors.js';

export interface NicAddress { id: string; index: number; address: string; clearPort: number; securePort: number; ikePort: number }

export interface AddressingOptions {
  nics: number;
  firstAddress: string;
  portBase: number | null;
  /** --id-prefix (checked by parseIdPrefix): NIC ids `PREFIX-nic-N`; absent: `nic-N`. */
  idPrefix?: string;
}

/** The longest --id-prefix: with '-nic-' and a 6-digit index an id stays well inside the store's 64 characters. */
export const ID_PREFIX_MAX = 32;

/**
 * An --id-prefix: 1-32 letters, digits, '.', '_' or '-', starting and ending with a letter or digit (so ids read
 * `lab-a-nic-1` and a TARGET pattern `lab-a-*` names one emulator's NICs). E_USAGE otherwise.
 */
export function parseIdPrefix(s: string): string {
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(s) || s.length > ID_PREFIX_MAX) {
    throw new UsageError('E_USAGE', `--id-prefix must be 1-${ID_PREFIX_MAX} letters, digits, '.', '_' or '-', starting and ending with a letter or digit (e.g. lab-a), got '${s}'`);
  }
  return s;
}

export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) throw new UsageError('E_USAGE', `'${s}' is not an IPv4 address (e.g. 127.0.1.1)`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIpv4(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function nicId(index: number, idPrefix?: string): string {
  return idPrefix ? `${idPrefix}-nic-${index}` : `nic-${index}`;
}

export function assignAddresses(o: AddressingOptions): NicAddress[] {
  if (!Number.isInteger(o.nics) || o.nics < 1) throw new UsageError('E_USAGE', `--nics must be a whole number >= 1, got ${o.nics}`);
  const out: NicAddress[] = [];
  if (o.portBase !== null) {
    if (!Number.isInteger(o.portBase) || o.portBase < 1 || o.portBase + 3 * o.nics > 65536) {
      throw new UsageError('E_USAGE', `--port-base ${o.portBase} leaves no room for ${o.nics} NICs x 3 ports below 65536`);
    }
    for (let i = 1; i <= o.nics; i++) {
      const p = o.portBase + 3 * (i - 1);
      out.push({ id: nicId(i, o.idPrefix), index: i, address: o.firstAddress, clearPort: p, securePort: p + 1, ikePort: p + 2 });
    }
    return out;
  }
  let a = parseIpv4(o.firstAddress);
  const net = a >>> 24;
  if (net === 0 || net >= 224) throw new UsageError('E_USAGE', `--first-address must be a unicast address (127.x.y.z, or one of this host's, e.g. 10.77.1.1), got ${o.firstAddress}`);
  for (let i = 1; i <= o.nics; i++) {
    while ((a & 255) === 0 || (a & 255) === 255) a++;
    if (a >>> 24 !== net) throw new UsageError('E_USAGE', `${o.nics} NICs do not fit in ${net}.0.0.0/8 from ${o.firstAddress}`);
    out.push({ id: nicId(i, o.idPrefix), index: i, address: formatIpv4(a), clearPort: 623, securePort: 664, ikePort: 500 });
    a++;
  }
  return out;
}

/**
 * Address-per-NIC outside 127/8: the NIC addresses `assigned` that are not among `local` (the host's IPv4 addresses
 * as os.networkInterfaces() lists them), each once. `start` tries each with a bind and refuses one the host does not
 * have (E_USAGE) rather than leave NICs without sockets. Loopback addresses are all the host's on Linux.
 */
export function missingAddresses(assigned: readonly NicAddress[], local: ReadonlySet<string>): string[] {
  return assigned.filter((a) => !a.address.startsWith('127.') && !local.has(a.address)).map((a) => a.address);
}
