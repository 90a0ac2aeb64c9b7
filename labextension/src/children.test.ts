import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childSummary, groupChildren, parentOf } from './children.js';
import type { BlockStatus, IBlock } from './protocol';

function block(name: string, status: BlockStatus = 'idle'): IBlock {
  return {
    name,
    kind: 'python',
    upstream: [],
    cell_id: null,
    status,
    duration_s: null,
    message: null
  };
}

test('children go under their block, in arrival order', () => {
  const grouped = groupChildren([
    block('tenants'),
    block('sync'),
    block('sync:acme', 'done'),
    block('sync:b%3Ac', 'failed'),
    block('orphan:x', 'done')
  ]);
  assert.deepEqual(
    grouped.blocks.map(b => b.name),
    ['tenants', 'sync', 'orphan:x']
  );
  assert.deepEqual(
    grouped.children.get('sync')?.map(b => b.name),
    ['sync:acme', 'sync:b%3Ac']
  );
});

test('a child name needs a known block before the colon', () => {
  assert.equal(parentOf('sync:acme', new Set(['sync'])), 'sync');
  assert.equal(parentOf(':acme', new Set([''])), null);
  assert.equal(parentOf('sync', new Set(['sync'])), null);
});

test('the summary counts children by status', () => {
  assert.equal(
    childSummary([block('a:1', 'done'), block('a:2', 'done'), block('a:3', 'failed')]),
    '3 children: 2 done, 1 failed'
  );
  assert.equal(childSummary([block('a:1', 'running')]), '1 child: 1 running');
});
