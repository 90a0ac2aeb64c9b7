import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, parseMagicLine } from './magic.js';

test('source with upstreams', () => {
  assert.deepEqual(parseMagicLine('%%di_source shop --upstream pg_credentials\nsource: postgresql\n'), {
    kind: 'source',
    name: 'shop',
    upstream: ['pg_credentials'],
    yaml: true
  });
});

test('destination with several upstreams, flags after them', () => {
  assert.deepEqual(parseMagicLine('%%di_destination warehouse --upstream enrich shop --lang python\n'), {
    kind: 'destination',
    name: 'warehouse',
    upstream: ['enrich', 'shop'],
    yaml: false
  });
});

test('python block, comma list and unknown flag values are not the name', () => {
  assert.deepEqual(parseMagicLine('%%di_block --timeout 30 enrich --upstream=a,b c'), {
    kind: 'python',
    name: 'enrich',
    upstream: ['a', 'b', 'c'],
    yaml: false
  });
});

test('not a block cell', () => {
  assert.equal(parseMagicLine('%%sql\nselect 1'), null);
  assert.equal(parseMagicLine('x = 1  # %%di_source a'), null);
  assert.equal(parseMagicLine(''), null);
});

test('durations', () => {
  assert.equal(formatDuration(1.234), '1.2s');
  assert.equal(formatDuration(42.4), '42s');
  assert.equal(formatDuration(123), '2m 03s');
  assert.equal(formatDuration(null), '');
});
