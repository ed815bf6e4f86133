/**
 * Request handling shared by the two loopback JSON APIs (nic-emulator/control-server.ts, mgmt-station/daemon.ts):
 * a request body is a JSON object or nothing, and a path segment is percent-decoded; anything else is the
 * caller's mistake, E_USAGE (HTTP 400), never an internal error.
 */
import type http from 'node:http';
import { UsageError } from '../common/errors.js';

/** The request body as a JSON object ({} when empty). Over `maxBytes`, not JSON, or not an object: E_USAGE. */
export function readJsonBody(req: http.IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = '';
    let tooLarge = false;
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      if (!tooLarge) text += c;
      if (text.length > maxBytes) {
        tooLarge = true; // read on and drop the rest, so the answer can still be sent
        text = '';
      }
    });
    req.on('error', reject);
    req.on('end', () => {
      if (tooLarge) return reject(new UsageError('E_USAGE', `the request body is over ${maxBytes} bytes`));
      if (!text.trim()) return resolve({});
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        return reject(new UsageError('E_USAGE', `the request body is not JSON: ${(e as Error).message}`));
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        return reject(new UsageError('E_USAGE', `the request body must be a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`));
      }
      resolve(v as Record<string, unknown>);
    });
  });
}

/** A percent-encoded path segment (a NIC id); E_USAGE when its encoding is malformed. */
export function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new UsageError('E_USAGE', `malformed percent-encoding in the NIC id '${segment}'`);
  }
}
