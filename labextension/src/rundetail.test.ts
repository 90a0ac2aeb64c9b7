import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBookmark, runErrors, streamRows } from './rundetail.js';
import type { IRunRecord } from './protocol';

const run: IRunRecord = {
  id: 2,
  pipeline: 'shop',
  origin: 'kernel',
  status: 'failed',
  started: '2026-11-30T08:00:00.000+00:00',
  ended: '2026-11-30T08:00:01.500+00:00',
  blocks: [
    {
      name: 'src',
      kind: 'source',
      status: 'done',
      seconds: 0.4,
      reason: null,
      streams: {
        orders: {
          rows: 1234,
          bookmark_before: null,
          bookmark_after: { updated_at: '2024-01-03T00:00:00+00:00', id: 3 }
        }
      },
      warnings: [{ stream: 'orders', message: '2 rows have no updated_at' }]
    },
    {
      name: 'wh',
      kind: 'destination',
      status: 'failed',
      seconds: 0.1,
      reason: null,
      error: 'folder no/such does not exist',
      streams: { orders: { rows: 0, table: 'orders' } },
      warnings: []
    }
  ]
};

test('one row per stream; only source streams show bookmarks, readably', () => {
  assert.deepEqual(streamRows(run), [
    [
      'src',
      'orders',
      '1,234',
      '',
      'no bookmark yet',
      'updated_at = 2024-01-03T00:00:00+00:00, id = 3'
    ],
    ['wh', 'orders', '0', 'orders', '', '']
  ]);
});

test('errors and warnings are listed once each', () => {
  assert.deepEqual(runErrors(run), [
    "block 'wh': folder no/such does not exist",
    "warning: block 'src', stream 'orders': 2 rows have no updated_at"
  ]);
});

test('a bookmark that is not an object is shown as it is', () => {
  assert.equal(formatBookmark('0/16B3748'), '0/16B3748');
  assert.equal(formatBookmark(undefined), 'no bookmark yet');
});
