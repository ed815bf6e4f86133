/**
 * Where each emulated NIC listens.
 *  - address-per-NIC (default): NIC i gets its own loopback address with the standard ports
 *    (623 clear, 664 secure, 500 IKE), so FreeIPMI `rmcpping`, which always targets port 623, works unchanged.
 *    Addresses count up from --first-address (default 127.0.1.1), skipping .0 and .255.
 *    Ports below 1024 need root or `setcap cap_net_bind_service=+ep $(which node)`.
 *  - port-per-NIC (--port-base P): every NIC on one address; NIC i (1-based) uses P+3(i-1) clear,
 *    P+3(i-1)+1 secure, P+3(i-1)+2 IKE. No privileges needed (like VirtualBMC's one-port-per-BMC).
 */
import { UsageError } from '../common/errors.js';

export interface NicAddress { id: string; index: number; address: string; clearPort: number; securePort: number; ikePort: number }

export interface AddressingOptions { nics: number; firstAddress: string; portBase: number | null }

export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) throw new UsageError('E_USAGE', `'${s}' is not an IPv4 address (e.g. 127.0.1.1)`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIpv4(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function nicId(index: number): string {
  return `nic-${index}`;
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
      out.push({ id: nicId(i), index: i, address: o.firstAddress, clearPort: p, securePort: p + 1, ikePort: p + 2 });
    }
    return out;
  }
  let a = parseIpv4(o.firstAddress);
  if (a >>> 24 !== 127) throw new UsageError('E_USAGE', `--first-address must be a loopback address (127.x.y.z), got ${o.firstAddress}`);
  for (let i = 1; i <= o.nics; i++) {
    while ((a & 255) === 0 || (a & 255) === 255) a++;
    if (a >>> 24 !== 127) throw new UsageError('E_USAGE', `${o.nics} NICs do not fit in 127.0.0.0/8 from ${o.firstAddress}`);
    out.push({ id: nicId(i), index: i, address: formatIpv4(a), clearPort: 623, securePort: 664, ikePort: 500 });
    a++;
  }
  return out;
}
