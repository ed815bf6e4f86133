/**
 * Request handling shared by the two loopback JSON APIs (nic-emulator/control-server.ts, mgmt-station/daemon.ts):
 * a request body is a JSON object or nothing, and a path segment is percent-decoded; anything else is the
 * caller's mistake, E_USAGE (HTTP 400), never an internal error.
 *
 * Both APIs answer an error alike (issue 17: they wrapped errors differently): the body is
 * `{ "ok": false, "error": { "code": "E_...", "message": "..." } }`, as the CLIs print an error with --json, and the
 * HTTP status comes from the code by one table (httpStatusOf). A success is a 2xx with the resource.
 */
import type http from 'node:http';
import { UsageError, type ErrorCode } from '../common/errors.js';

/** What an error code means to an HTTP client; any code not named here is the NIC's or its host's failure (502). */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  // the request is wrong: fix it and ask again
  E_USAGE: 400, E_POLICY: 400, E_TABLE: 400, E_IPMI_USERS: 400,
  E_AUTH: 401,
  // a fleet-page read whose Host is not a loopback name (DNS rebinding)
  E_HOST: 403,
  E_NOT_FOUND: 404,
  // the NIC's, the host's or the station's state refuses it now
  E_NIC_DOWN: 409, E_SPI_IN_USE: 409, E_ILLEGAL_TRANSITION: 409, E_FENCED: 409, E_RUNNING: 409, E_TAMPERED: 409,
  E_INTERNAL: 500,
  // something this server needs is not there: the store, the emulator
  E_STORE: 503, E_UNREACHABLE: 503, E_KEYFILE: 503,
  // too many fleet-page event streams at once
  E_BUSY: 503,
  // no answer in time; the outcome may not be known
  E_TIMEOUT: 504, E_IKE_TIMEOUT: 504, E_OUTCOME_UNKNOWN: 504,
};

/** The HTTP status both APIs answer an error code with (the table above; other codes: 502). */
export function httpStatusOf(code: string): number {
  return HTTP_STATUS[code as ErrorCode] ?? 502;
}

/** An error as both APIs answer it (and as the CLIs print it with --json). */
export function errorBody(code: string, message: string): { ok: false; error: { code: string; message: string } } {
  return { ok: false, error: { code, message } };
}

/** Answer `value` as JSON (64-bit counters, bigint, as decimal strings). */
export function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

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
