import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatDuration, IMagicLine, parseMagicLine } from './magic.js';

/** The cases tests/pipeline/test_magic_line_grammar.py runs against the kernel's parser (from lib/). */
const CASES_FILE = fileURLToPath(new URL('../../tests/magic_line_cases.json', import.meta.url));

interface IDeclared {
  kind: string;
  name: string;
  upstream: string[];
  lang: string;
  output: string | null;
  replicate?: string;
  dynamic?: true;
  reduce_output?: true;
}

interface ICase {
  cell: string;
  expect: IDeclared | { error: true } | null;
  why: string;
}

const cases = (JSON.parse(readFileSync(CASES_FILE, 'utf8')) as { cases: ICase[] }).cases;

/** What the kernel's parser reports: null, {error: true}, or what the line declares. */
function declared(line: IMagicLine | null): ICase['expect'] {
  if (line === null) {
    return null;
  }
  if (line.error !== null) {
    return { error: true };
  }
  const { kind, name, upstream, lang, output } = line;
  const result: IDeclared = { kind, name, upstream, lang, output };
  // the flags of replica and dynamic blocks are listed only when given
  if (line.replicate !== null) {
    result.replicate = line.replicate;
  }
  if (line.dynamic) {
    result.dynamic = true;
  }
  if (line.reduceOutput) {
    result.reduce_output = true;
  }
  return result;
}

test('the shared cases file is there and not trivial', () => {
  assert.ok(cases.length >= 100, `${cases.length} cases in ${CASES_FILE}`);
});

for (const [index, c] of cases.entries()) {
  test(`magic line case ${index}: ${c.why} ${JSON.stringify(c.cell)}`, () => {
    assert.deepEqual(declared(parseMagicLine(c.cell)), c.expect);
  });
}

test('yaml is true for YAML source and destination bodies only', () => {
  assert.equal(parseMagicLine('%%di_source shop\nsource: files')?.yaml, true);
  assert.equal(parseMagicLine('%%di_destination wh --lang python')?.yaml, false);
  assert.equal(parseMagicLine('%%di_block b')?.yaml, false);
});

test('a refused line still says what it could read (badges while typing)', () => {
  const typing = parseMagicLine('%%di_source shop --upstream\nsource: files');
  assert.equal(typing?.kind, 'source');
  assert.equal(typing?.name, 'shop');
  assert.equal(typing?.yaml, true);
  assert.match(typing?.error ?? '', /expected at least one argument/);
  const unnamed = parseMagicLine('%%di_block');
  assert.equal(unnamed?.name, '');
  assert.match(unnamed?.error ?? '', /name/);
  assert.match(
    parseMagicLine('%%di_block b --lang python')?.error ?? '',
    /unrecognized arguments: --lang python/
  );
  assert.match(parseMagicLine('%%di_source "shop"')?.error ?? '', /not a valid name/);
});

test('durations', () => {
  assert.equal(formatDuration(1.234), '1.2s');
  assert.equal(formatDuration(42.4), '42s');
  assert.equal(formatDuration(123), '2m 03s');
  assert.equal(formatDuration(null), '');
});
