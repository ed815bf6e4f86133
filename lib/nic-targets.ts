/**
 * Which NICs a verb's TARGET names, for both executables: a NIC by id (`nic-1`) or by address (`127.0.1.1`, or
 * `127.0.0.1:16233` in port-per-NIC mode, any of the NIC's ports), a comma-separated list of those, a pattern on ids
 * or addresses (`nic-*`, `127.0.1.?`) or `all`. Pure: the caller lists the NICs it knows (the store, a daemon, the
 * emulator) and gets ids back.
 */
import { LifelineError, UsageError } from '../common/errors.js';

export interface KnownNic {
  id: string;
  address: string;
  /** The NIC's ports (clear, secure, IKE): ADDRESS:PORT names the NIC with that address and one of them. */
  ports: readonly number[];
}

/** More than one NIC (possibly): `all`, a list or a pattern. A fleet verb prints a summary rather than one answer. */
export function isFleetTarget(target: string): boolean {
  return target === 'all' || target.includes(',') || /[*?]/.test(target);
}

/** An IPv4 address, with or without :PORT: to be looked up among the NICs' addresses rather than their ids. */
export function isAddressTarget(target: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?$/.test(target);
}

/** Would resolveTargets need the list of NICs (anything but one plain id)? */
export function needsLookup(target: string): boolean {
  return isFleetTarget(target) || isAddressTarget(target);
}

/**
 * The ids `target` names among `known`, in the order given (a list) or known (`all`, a pattern), each once. An id not
 * in `known` is passed through (the verb then says the NIC is unknown in its own words); an address, pattern or list
 * item that matches nothing is E_NOT_FOUND, an address several NICs share (port-per-NIC) without a port E_USAGE.
 */
export function resolveTargets(target: string, known: readonly KnownNic[]): string[] {
  if (target === 'all') return known.map((n) => n.id);
  const out: string[] = [];
  for (const item of target.split(',').map((s) => s.trim())) {
    if (!item) throw new UsageError('E_USAGE', `an empty item in the NIC list '${target}'`);
    for (const id of resolveItem(item, known)) if (!out.includes(id)) out.push(id);
  }
  return out;
}

function resolveItem(item: string, known: readonly KnownNic[]): string[] {
  if (/[*?]/.test(item)) {
    const re = globRegExp(item);
    const hits = known.filter((n) => re.test(n.id) || re.test(n.address));
    if (hits.length === 0) throw new LifelineError('E_NOT_FOUND', `no NIC matches '${item}' (${known.length} known)`);
    return hits.map((n) => n.id);
  }
  if (!isAddressTarget(item)) return [item];
  const [address, port] = item.split(':');
  const hits = known.filter((n) => n.address === address && (port === undefined || n.ports.includes(Number(port))));
  if (hits.length === 1) return [hits[0].id];
  if (hits.length === 0) throw new LifelineError('E_NOT_FOUND', `no NIC at ${item}`);
  throw new UsageError('E_USAGE', `${item} is the address of ${hits.length} NICs (${hits.slice(0, 3).map((n) => n.id).join(', ')}${hits.length > 3 ? ', ...' : ''}); give ADDRESS:PORT or an id`);
}

/** `*` any run of characters, `?` one; the rest literal; the whole id or address must match. */
function globRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}
