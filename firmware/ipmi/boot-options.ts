/**
 * System boot options, in RAM (IPMI v2.0 §28.12 Set / §28.13 Get System Boot Options, table 28-14; cat. §7.3).
 * Only the parameters `ipmitool chassis bootdev` uses:
 *
 *   0  set in progress      bits 1:0 = 00 set complete, 01 set in progress, 10 commit write
 *   4  boot info acknowledge byte 1 write mask, byte 2 acknowledge bits (BIOS/POST, OS loader, ...)
 *   5  boot flags (5 bytes) byte 1 bit 7 valid, bit 6 persistent, bit 5 EFI; byte 2 bits 5:2 device ...
 *
 * Any other parameter answers 80h "parameter not supported", which ipmitool reports and gets past. Not
 * modelled: the 60-second auto-clear of the boot-flags valid bit (parameter 3) and the BIOS clearing it at
 * boot; the flags stay until set again or the NIC restarts.
 */
import { CC } from './ipmi-types.js';

export const BOOT_PARAM = { setInProgress: 0, bootInfoAck: 4, bootFlags: 5 } as const;
export const BOOT_FLAGS_LENGTH = 5;

/** Boot device selector, boot flags byte 2 bits 5:2 (table 28-14). */
export const BOOT_DEVICE: Readonly<Record<number, string>> = {
  0x0: 'none', 0x1: 'pxe', 0x2: 'disk', 0x3: 'safe', 0x4: 'diag', 0x5: 'cdrom', 0x6: 'bios', 0xf: 'floppy',
};

export class BootOptions {
  /** Parameter 0: 0 set complete, 1 set in progress. */
  setInProgress = 0;
  /** Parameter 4 byte 2. */
  acknowledge = 0;
  /** Parameter 5. */
  readonly flags = new Uint8Array(BOOT_FLAGS_LENGTH);

  /** Set System Boot Options: request data = [bit 7 lock | selector, ...parameter data]. Returns the cc. */
  set(data: Uint8Array): number {
    if (data.length < 1) return CC.requestLengthInvalid;
    const selector = data[0] & 0x7f;
    const p = data.subarray(1);
    switch (selector) {
      case BOOT_PARAM.setInProgress: {
        if (p.length !== 1) return CC.requestLengthInvalid;
        const v = p[0] & 0x03;
        if (v === 0) this.setInProgress = 0;
        else if (v === 1) {
          if (this.setInProgress === 1) return CC.bootSetInProgress;
          this.setInProgress = 1;
        } else if (v === 3) return CC.invalidDataField;
        // v = 2 "commit write": every write already took effect.
        return CC.ok;
      }
      case BOOT_PARAM.bootInfoAck:
        if (p.length !== 2) return CC.requestLengthInvalid;
        this.acknowledge = (this.acknowledge & ~p[0]) | (p[1] & p[0]);
        return CC.ok;
      case BOOT_PARAM.bootFlags:
        if (p.length !== BOOT_FLAGS_LENGTH) return CC.requestLengthInvalid;
        this.flags.set(p);
        return CC.ok;
      default:
        return CC.bootParameterNotSupported;
    }
  }

  /** Get System Boot Options: request data = [selector, set selector, block selector]. */
  get(data: Uint8Array): { cc: number; data?: Uint8Array } {
    if (data.length !== 3) return { cc: CC.requestLengthInvalid };
    const selector = data[0] & 0x7f;
    // Response: parameter version 01h, then the selector (bit 7 clear: parameter valid), then its data.
    const answer = (...d: number[]) => ({ cc: CC.ok, data: Uint8Array.from([0x01, selector, ...d]) });
    switch (selector) {
      case BOOT_PARAM.setInProgress:
        return answer(this.setInProgress);
      case BOOT_PARAM.bootInfoAck:
        return answer(0x00, this.acknowledge); // the write mask reads back as 00h
      case BOOT_PARAM.bootFlags:
        return answer(...this.flags);
      default:
        return { cc: CC.bootParameterNotSupported };
    }
  }

  /** For status(): the boot flags in words (valid bit, persistence, EFI, the device they select). */
  describe(): { valid: boolean; persistent: boolean; efi: boolean; device: string } {
    const f = this.flags;
    return {
      valid: (f[0] & 0x80) !== 0,
      persistent: (f[0] & 0x40) !== 0,
      efi: (f[0] & 0x20) !== 0,
      device: BOOT_DEVICE[(f[1] >> 2) & 0x0f] ?? `0x${((f[1] >> 2) & 0x0f).toString(16)}`,
    };
  }
}
