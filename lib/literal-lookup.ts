import dns from 'node:dns';
import { isIPv4 } from 'node:net';

/**
 * dgram's address lookup for send(). dgram resolves every destination with dns.lookup(), which answers even an IP
 * literal in a deferred callback (process.nextTick), so the datagram leaves only after whatever the caller does next
 * (a station preparing its next keystream: tens of µs). With this lookup an IPv4 literal (a NIC's or a station's
 * address) goes out at once, inside send(); host names (a heartbeat station given by name in a policy file) still
 * go through dns.lookup.
 */
export function literalLookup(address: string, options: dns.LookupOneOptions, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  if (address !== lastLiteral) {
    if (!isIPv4(address)) {
      dns.lookup(address, options, cb);
      return;
    }
    lastLiteral = address; // datagrams mostly go to the same peer: skip isIPv4's regular expression next time
  }
  cb(null, address, 4);
}
let lastLiteral = '';
