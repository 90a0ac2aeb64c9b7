import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockSource, freeName } from './blocktext.js';

test('a free name: the connector, else numbered, always an identifier', () => {
  assert.equal(freeName('postgresql', ['shop']), 'postgresql');
  assert.equal(freeName('postgresql', ['postgresql', 'postgresql_2']), 'postgresql_3');
  assert.equal(freeName('http-api', []), 'http_api');
  assert.equal(freeName('3d', []), 'b_3d');
});

test('a template gets its name everywhere (secret names too) and its upstream', () => {
  const template =
    '%%di_destination {name} --upstream {upstream}\ndestination: duckdb\nconfig:\n' +
    '  password: "{{ secret(\'{name}_password\') }}"\n';
  assert.equal(
    blockSource('destination', 'duckdb', 'shop', template),
    '%%di_destination duckdb --upstream shop\ndestination: duckdb\nconfig:\n' +
      '  password: "{{ secret(\'duckdb_password\') }}"\n'
  );
  assert.equal(
    blockSource('destination', 'duckdb', null, template).split('\n')[0],
    '%%di_destination duckdb'
  );
});

test('a Python block transforms the last block, or loads rows when there is none', () => {
  assert.match(
    blockSource('python', 'transform', 'shop', null),
    /^%%di_block transform --upstream shop\n@transformer\ndef transform\(shop, /
  );
  assert.match(blockSource('python', 'load', null, null), /^%%di_block load\n@data_loader\n/);
});
