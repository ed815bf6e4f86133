/**
 * A TCP <-> Unix-socket relay, standing in for `ssh -L` between two lab hosts in the network-namespace test
 * (test/e2e/two-hosts-netns.test.ts). The emulator's control API listens on loopback only, so a station on
 * another host reaches it through a tunnel; network namespaces share the file system, so a Unix socket joins the
 * loopback of one namespace to the loopback of another:
 *
 *   node unix-bridge.js serve SOCKET HOST:PORT    (in the emulator's namespace: SOCKET -> its control API)
 *   node unix-bridge.js listen HOST:PORT SOCKET   (in the station's namespace: a loopback port -> SOCKET)
 *
 * Prints `ready` once listening; runs until killed.
 */
import net from 'node:net';
import { rmSync } from 'node:fs';

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

/**
 * Both ways until each side has ended: pipe() ends the other side once one ends (after its data is written; a
 * socket that got the peer's FIN closes once its own writes are out), so an answer followed by the server's close
 * (the control API answers `Connection: close`) is delivered whole. Only an error tears both down at once.
 */
function pipe(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', (e) => {
    process.stderr.write(`unix-bridge: ${e.message}\n`);
    b.destroy();
  });
  b.on('error', (e) => {
    process.stderr.write(`unix-bridge: ${e.message}\n`);
    a.destroy();
  });
}

const [mode, from, to] = process.argv.slice(2);
let server: net.Server;
if (mode === 'serve') {
  rmSync(from, { force: true });
  const target = hostPort(to);
  server = net.createServer((c) => pipe(c, net.connect(target.port, target.host)));
  server.listen(from, () => process.stdout.write('ready\n'));
} else if (mode === 'listen') {
  const at = hostPort(from);
  server = net.createServer((c) => pipe(c, net.connect(to)));
  server.listen(at.port, at.host, () => process.stdout.write('ready\n'));
} else {
  process.stderr.write('usage: unix-bridge.js serve SOCKET HOST:PORT | listen HOST:PORT SOCKET\n');
  process.exit(2);
}
process.on('SIGTERM', () => server.close(() => process.exit(0)));
