/**
 * The strict exposition-format reader the /metrics tests rely on (test/support/prom-text.ts): a checker that passes
 * everything proves nothing, so each rule it enforces has a text that breaks it.
 */
import assert from 'node:assert/strict';
import { checkLifelineConventions, parsePromText, sampleValue } from '../support/prom-text.js';

const GOOD = `# HELP lifeline_x_total Things.
# TYPE lifeline_x_total counter
lifeline_x_total{reason="a"} 3
lifeline_x_total{reason="b\\"q\\\\\\n"} 0
# HELP lifeline_d_seconds Time.
# TYPE lifeline_d_seconds histogram
lifeline_d_seconds_bucket{le="0.1",verb="ping"} 1
lifeline_d_seconds_bucket{le="+Inf",verb="ping"} 2
lifeline_d_seconds_sum{verb="ping"} 0.35
lifeline_d_seconds_count{verb="ping"} 2
# HELP up_g A gauge.
# TYPE up_g gauge
up_g -1.5e3
# HELP n_g NaN as prom-client writes it.
# TYPE n_g gauge
n_g Nan
`;

describe('prom-text: the strict exposition-format reader', () => {
  it('reads well-formed text: families, types, escaped label values, histograms', () => {
    const f = parsePromText(GOOD);
    assert.equal(f.get('lifeline_x_total')!.type, 'counter');
    assert.equal(sampleValue(f, 'lifeline_x_total', { reason: 'b"q\\\n' }), 0);
    assert.equal(sampleValue(f, 'lifeline_d_seconds_count', { verb: 'ping' }), 2);
    assert.equal(sampleValue(f, 'up_g'), -1500);
    assert.ok(Number.isNaN(sampleValue(f, 'n_g')));
    checkLifelineConventions(f);
  });

  const BAD: [string, string, RegExp][] = [
    ['no final newline', 'a 1', /newline/],
    ['another comment', '# EOF\n', /comment other than/],
    ['a bad metric name', '1abc 1\n', /bad metric name/],
    ['a bad label name', 'a{1x="y"} 1\n', /bad label name/],
    ['a reserved label', 'a{__x="y"} 1\n', /reserved/],
    ['a label twice', 'a{x="1",x="2"} 1\n', /twice/],
    ['an unquoted value', 'a{x=1} 1\n', /="/],
    ['a bad escape', 'a{x="\\t"} 1\n', /bad escape/],
    ['a bad value', 'a 1,5\n', /not a float/],
    ['a series twice', 'a{x="1"} 1\na{x="1"} 2\n', /series twice/],
    ['TYPE after samples', 'a 1\n# TYPE a gauge\n', /after its samples|declared again/],
    ['two TYPE lines', '# TYPE a gauge\n# TYPE a gauge\n', /second TYPE/],
    ['an unknown type', '# TYPE a meter\n', /unknown type/],
    ['a negative counter', '# TYPE a_total counter\na_total -1\n', /below 0/],
    ['samples split', '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n', /contiguous/],
    ['buckets going down', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /go down/],
    ['+Inf != count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /_count/],
    ['no +Inf bucket', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_sum 1\nh_count 2\n', /\+Inf/],
  ];
  for (const [what, text, why] of BAD) {
    it(`refuses ${what}`, () => assert.throws(() => parsePromText(text), why));
  }

  it('Lifeline conventions: _total only on counters, histograms in seconds, HELP, no per-NIC label', () => {
    assert.throws(() => checkLifelineConventions(parsePromText('# HELP lifeline_a x\n# TYPE lifeline_a counter\nlifeline_a 1\n')), /_total/);
    assert.throws(() => checkLifelineConventions(parsePromText('# HELP lifeline_a_total x\n# TYPE lifeline_a_total gauge\nlifeline_a_total 1\n')), /_total on a gauge/);
    assert.throws(() => checkLifelineConventions(parsePromText('# TYPE lifeline_a gauge\nlifeline_a 1\n')), /HELP/);
    assert.throws(() => checkLifelineConventions(parsePromText('# HELP lifeline_a x\n# TYPE lifeline_a gauge\nlifeline_a{nic="nic-1"} 1\n')), /per-NIC/);
  });
});
