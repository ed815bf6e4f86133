import assert from 'node:assert/strict';
import {
  defaultClusterPolicy,
  formatClusterPolicy,
  parseClusterPolicy,
  stationOrder,
  type ClusterPolicy,
} from '../../firmware/cluster-policy.js';

const SEED_EXAMPLE = `; NIC policy, seed syntax (DESIGN §5)
[GENERAL]
Heartbeat = INSTANT
HeartbeatResponseTime = 2
HeartbeatDeferTime = 10
Randomize = yes
[CLUSTER]
Cluster1 = 127.0.0.1:7001 127.0.0.2:7001
`;

const FOUR = ['127.0.0.1:7001', '127.0.0.2:7001', '127.0.0.3:7001', '127.0.0.4:7001'];

function policy(over: Partial<ClusterPolicy> = {}): ClusterPolicy {
  return { ...defaultClusterPolicy(), heartbeat: 'INSTANT', clusters: [{ index: 1, stations: FOUR }], ...over };
}

describe('cluster policy file (DESIGN §5, seed INI syntax)', () => {
  describe('parseClusterPolicy', () => {
    it('reads the seed example', () => {
      assert.deepEqual(parseClusterPolicy(SEED_EXAMPLE, 'policy.ini'), {
        heartbeat: 'INSTANT',
        heartbeatResponseTime: 2,
        heartbeatDeferTime: 10,
        randomize: true,
        clusters: [{ index: 1, stations: ['127.0.0.1:7001', '127.0.0.2:7001'] }],
      });
    });

    it('an empty file is the seed default: Heartbeat NONE, 2 s, 10 s, Randomize yes, no stations', () => {
      assert.deepEqual(parseClusterPolicy('', 'empty.ini'), defaultClusterPolicy());
      assert.deepEqual(defaultClusterPolicy(), {
        heartbeat: 'NONE',
        heartbeatResponseTime: 2,
        heartbeatDeferTime: 10,
        randomize: true,
        clusters: [],
      });
    });

    it('keys, sections and modes are case-insensitive; comments, blank lines, CRLF and spaces are ignored', () => {
      const text = [
        '\uFEFF# written by hand',
        '',
        '  [ general ]  ',
        'heartbeat=deferred',
        'HEARTBEATRESPONSETIME   =   3   ; seconds',
        '\theartbeatDeferTime = 0',
        'RANDOMIZE = No',
        '[cluster]',
        '; the secondaries first, in the file',
        'cluster2 = 10.0.0.3:7003   10.0.0.4',
        'CLUSTER1 = Station-A.lab.example:7001 # primary',
      ].join('\r\n');
      assert.deepEqual(parseClusterPolicy(text, 'p.ini'), {
        heartbeat: 'DEFERRED',
        heartbeatResponseTime: 3,
        heartbeatDeferTime: 0,
        randomize: false,
        clusters: [
          { index: 1, stations: ['station-a.lab.example:7001'] },
          { index: 2, stations: ['10.0.0.3:7003', '10.0.0.4:664'] },
        ],
      });
    });

    it('a station without a port gets 664, the secure RMCP port (DESIGN §2.2)', () => {
      const p = parseClusterPolicy('[CLUSTER]\nCluster1 = 127.0.0.9\n', 'p.ini');
      assert.deepEqual(p.clusters, [{ index: 1, stations: ['127.0.0.9:664'] }]);
    });

    it('Randomize accepts yes/no and true/false/on/off/1/0', () => {
      for (const [v, want] of [['yes', true], ['TRUE', true], ['on', true], ['1', true], ['no', false], ['False', false], ['off', false], ['0', false]] as const) {
        assert.equal(parseClusterPolicy(`[GENERAL]\nRandomize = ${v}\n`, 'p.ini').randomize, want, v);
      }
    });

    it("the brief's example error: policy.ini:4: HeartbeatResponseTime must be a whole number of seconds >= 1", () => {
      const text = '[GENERAL]\nHeartbeat = INSTANT\n\nHeartbeatResponseTime = x\n[CLUSTER]\nCluster1 = 127.0.0.1\n';
      assert.throws(() => parseClusterPolicy(text, 'policy.ini'), (e: Error & { code?: string }) => {
        assert.equal(e.name, 'UsageError');
        assert.equal(e.code, 'E_POLICY');
        assert.match(e.message, /^policy\.ini:4: HeartbeatResponseTime must be a whole number of seconds >= 1 .*got 'x'$/);
        return true;
      });
    });

    // [file text, line of the error, what the message must say]
    const BAD: [string, number, RegExp][] = [
      ['[GENERAL]\n[SERVERS]\n', 2, /unknown section \[SERVERS\]; expected \[GENERAL\] or \[CLUSTER\]/],
      ['[GENERAL]\nHeartbeat = NONE\nTimeout = 3\n', 3, /unknown key 'Timeout' in \[GENERAL\]; expected Heartbeat, HeartbeatResponseTime/],
      ['[CLUSTER]\nServer1 = 127.0.0.1\n', 2, /unknown key 'Server1' in \[CLUSTER\]; expected Cluster1, Cluster2/],
      ['[CLUSTER]\nCluster0 = 127.0.0.1\n', 2, /unknown key 'Cluster0'/],
      ['[GENERAL]\nHeartbeat = NONE\n; again\nheartbeat = INSTANT\n', 4, /heartbeat is already set at line 2/],
      ['[CLUSTER]\nCluster1 = 127.0.0.1\nCLUSTER1 = 127.0.0.2\n', 3, /CLUSTER1 is already set at line 2/],
      ['[GENERAL]\n[CLUSTER]\nCluster1 = 127.0.0.1\n[general]\n', 4, /section \[GENERAL\] already started at line 1/],
      ['Heartbeat = INSTANT\n[GENERAL]\n', 1, /'Heartbeat' comes before any section; start with \[GENERAL\] or \[CLUSTER\]/],
      ['[GENERAL]\nHeartbeat INSTANT\n', 2, /expected 'Key = value' or '\[SECTION\]', got 'Heartbeat INSTANT'/],
      ['[GENERAL]\n= INSTANT\n', 2, /expected a key before '='/],
      ['[GENERAL]\nHeartbeat = ALWAYS\n', 2, /Heartbeat must be NONE, DEFERRED or INSTANT, got 'ALWAYS'/],
      ['[GENERAL]\nHeartbeat =\n', 2, /Heartbeat must be NONE, DEFERRED or INSTANT, got ''/],
      ['[GENERAL]\nHeartbeatResponseTime = 0\n', 2, /HeartbeatResponseTime must be a whole number of seconds >= 1 .*got '0'/],
      ['[GENERAL]\nHeartbeatResponseTime = 1.5\n', 2, /HeartbeatResponseTime .*got '1\.5'/],
      ['[GENERAL]\nHeartbeatResponseTime = -2\n', 2, /HeartbeatResponseTime .*got '-2'/],
      ['[GENERAL]\nHeartbeatResponseTime = 86401\n', 2, /HeartbeatResponseTime .*at most 86400.*got '86401'/],
      ['[GENERAL]\nHeartbeatDeferTime = soon\n', 2, /HeartbeatDeferTime must be a whole number of seconds >= 0 .*got 'soon'/],
      ['[GENERAL]\nRandomize = maybe\n', 2, /Randomize must be yes or no, got 'maybe'/],
      ['[CLUSTER]\nCluster1 =\n', 2, /Cluster1 must list one or more stations as address\[:port\], got nothing/],
      ['[CLUSTER]\nCluster1 = 127.0.0.1:99999\n', 2, /Cluster1: port of '127\.0\.0\.1:99999' must be 1\.\.65535/],
      ['[CLUSTER]\nCluster1 = 127.0.0.1:0\n', 2, /port of '127\.0\.0\.1:0' must be 1\.\.65535/],
      ['[CLUSTER]\nCluster1 = 127.0.0.1 300.0.0.1\n', 2, /'300\.0\.0\.1' has an octet above 255/],
      ['[CLUSTER]\nCluster1 = a:b:c\n', 2, /expected address\[:port\], got 'a:b:c'/],
      ['[CLUSTER]\nCluster1 = 1.2.3\n', 2, /'1\.2\.3' is neither an IPv4 address nor a host name/],
      ['[CLUSTER]\nCluster1 = -bad-.example\n', 2, /neither an IPv4 address nor a host name/],
      ['[CLUSTER]\nCluster1 = 127.0.0.1\nCluster2 = 10.0.0.1 127.0.0.1:664\n', 3, /Cluster2: station 127\.0\.0\.1:664 is already listed at line 2/],
      ['[GENERAL]\n\nHeartbeat = DEFERRED\n', 3, /Heartbeat = DEFERRED needs stations: add a \[CLUSTER\] section/],
      ['[GENERAL]\nHeartbeat = INSTANT\n[CLUSTER]\n', 2, /Heartbeat = INSTANT needs stations/],
    ];
    for (const [text, line, what] of BAD) {
      it(`rejects ${JSON.stringify(text.split('\n')[line - 1] ?? text)} at line ${line}`, () => {
        assert.throws(() => parseClusterPolicy(text, 'nic7.ini'), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'E_POLICY');
          assert.ok(e.message.startsWith(`nic7.ini:${line}: `), e.message);
          assert.match(e.message, what);
          return true;
        });
      });
    }

    it('Heartbeat = NONE needs no [CLUSTER]', () => {
      assert.equal(parseClusterPolicy('[GENERAL]\nHeartbeat = NONE\n', 'p.ini').clusters.length, 0);
    });
  });

  describe('formatClusterPolicy', () => {
    it('writes every [GENERAL] key and the ClusterN lines in N order', () => {
      const p = policy({ randomize: false, clusters: [{ index: 2, stations: ['10.0.0.2:664'] }, { index: 1, stations: ['10.0.0.1:7001'] }] });
      assert.equal(
        formatClusterPolicy(p),
        '[GENERAL]\nHeartbeat = INSTANT\nHeartbeatResponseTime = 2\nHeartbeatDeferTime = 10\nRandomize = no\n\n' +
          '[CLUSTER]\nCluster1 = 10.0.0.1:7001\nCluster2 = 10.0.0.2:664\n',
      );
    });

    it('round trips: parse(format(p)) equals p, and format is a fixed point', () => {
      const samples: ClusterPolicy[] = [
        defaultClusterPolicy(),
        parseClusterPolicy(SEED_EXAMPLE, 'p.ini'),
        policy({ heartbeat: 'DEFERRED', heartbeatResponseTime: 1, heartbeatDeferTime: 0, randomize: false }),
        policy({ clusters: [{ index: 1, stations: ['a.example:1'] }, { index: 7, stations: ['10.0.0.1:664', '10.0.0.2:65535'] }] }),
      ];
      for (const p of samples) {
        const text = formatClusterPolicy(p);
        assert.deepEqual(parseClusterPolicy(text, 'p.ini'), p);
        assert.equal(formatClusterPolicy(parseClusterPolicy(text, 'p.ini')), text);
      }
    });

    it('refuses a policy the parser could not have produced', () => {
      for (const bad of [
        policy({ heartbeatResponseTime: 0 }),
        policy({ heartbeatDeferTime: 1.5 }),
        policy({ heartbeat: 'SOMETIMES' as never }),
        policy({ clusters: [] }),
        policy({ clusters: [{ index: 1, stations: ['127.0.0.1'] }] }), // not normalised
        policy({ clusters: [{ index: 1, stations: ['127.0.0.1:1'] }, { index: 2, stations: ['127.0.0.1:1'] }] }),
        policy({ clusters: [{ index: 1, stations: ['127.0.0.1:1'] }, { index: 1, stations: ['127.0.0.2:1'] }] }),
      ]) {
        assert.throws(() => formatClusterPolicy(bad), { name: 'UsageError', code: 'E_USAGE' });
      }
    });
  });

  describe('stationOrder', () => {
    it('Randomize = no keeps the listed order, ClusterN lines in N order', () => {
      const p = parseClusterPolicy(
        '[GENERAL]\nRandomize = no\n[CLUSTER]\nCluster2 = 10.0.0.3 10.0.0.4\nCluster1 = 10.0.0.1 10.0.0.2\n',
        'p.ini',
      );
      for (const id of ['nic-1', 'nic-2', 'nic-3']) {
        assert.deepEqual(stationOrder(p, id), ['10.0.0.1:664', '10.0.0.2:664', '10.0.0.3:664', '10.0.0.4:664']);
      }
    });

    it('Randomize = yes: the documented SHA-256 Fisher-Yates (pinned against a Python re-implementation)', () => {
      const p = policy();
      assert.deepEqual(stationOrder(p, 'nic-0001'), ['127.0.0.2:7001', '127.0.0.4:7001', '127.0.0.3:7001', '127.0.0.1:7001']);
      assert.deepEqual(stationOrder(p, 'nic-0002'), ['127.0.0.3:7001', '127.0.0.2:7001', '127.0.0.1:7001', '127.0.0.4:7001']);
      assert.deepEqual(stationOrder(p, '00:1b:21:aa:bb:01'), ['127.0.0.2:7001', '127.0.0.3:7001', '127.0.0.4:7001', '127.0.0.1:7001']);
      // A lab seed draws another, equally reproducible, spread.
      assert.deepEqual(stationOrder(p, 'nic-0001', 'lab2'), FOUR);
    });

    it('is stable per NIC id (a restart keeps the order) and a permutation of the stations', () => {
      const p = policy();
      for (let i = 0; i < 50; i++) {
        const id = `nic-${i}`;
        const a = stationOrder(p, id);
        assert.deepEqual(stationOrder(p, id), a);
        assert.deepEqual([...a].sort(), [...FOUR].sort());
      }
    });

    it('spreads 1,000 NICs roughly evenly over 3 stations (first choice and whole order)', () => {
      const three = ['10.0.0.1:664', '10.0.0.2:664', '10.0.0.3:664'];
      const p = policy({ clusters: [{ index: 1, stations: three }] });
      const first = new Map<string, number>();
      const orders = new Map<string, number>();
      for (let i = 0; i < 1000; i++) {
        const o = stationOrder(p, `nic-${String(i).padStart(4, '0')}`);
        first.set(o[0], (first.get(o[0]) ?? 0) + 1);
        orders.set(o.join(' '), (orders.get(o.join(' ')) ?? 0) + 1);
      }
      // Binomial(1000, 1/3): sd ~ 15; +-60 is 4 sd. Six orders, 1000/6 ~ 167, sd ~ 12; +-50.
      assert.equal(first.size, 3);
      for (const [s, n] of first) assert.ok(Math.abs(n - 1000 / 3) < 60, `${s} first for ${n} NICs`);
      assert.equal(orders.size, 6);
      for (const [o, n] of orders) assert.ok(Math.abs(n - 1000 / 6) < 50, `${o}: ${n} NICs`);
    });

    it('one station or none: nothing to shuffle', () => {
      assert.deepEqual(stationOrder(policy({ clusters: [{ index: 1, stations: ['10.0.0.1:664'] }] }), 'n'), ['10.0.0.1:664']);
      assert.deepEqual(stationOrder(defaultClusterPolicy(), 'n'), []);
    });

    it('needs a NIC id', () => {
      assert.throws(() => stationOrder(policy(), ''), { code: 'E_USAGE' });
    });
  });
});
