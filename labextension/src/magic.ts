/**
 * Parsing of a jupyter-di cell's magic line (`%%di_source NAME --upstream A B`).
 *
 * One grammar with the kernel: jupyter_di/pipeline/magic_line.py (`parse_cell`) is the
 * reference, and it reads a cell the way IPython does before it calls a cell magic.  This file
 * mirrors it step by step:
 *
 * 1. lines are split where Python's `str.splitlines` splits them; leading empty or
 *    whitespace-only lines are dropped, then the first line's indent (spaces and tabs);
 * 2. the first line must start with `%%`; trailing whitespace is stripped and the magic's name
 *    ends at the first space (`%%di_source\tshop` is another magic, so not a block cell);
 * 3. the rest is split like IPython's `arg_split` (shlex in non-POSIX mode: split at spaces and
 *    tabs, a token that starts with a quote runs to the matching quote and keeps it);
 * 4. argparse semantics for the flags of magic_line.ARGUMENTS: `-u/--upstream BLOCK...`,
 *    `--lang yaml|python` (sources and destinations only), `-o/--output VAR`,
 *    `--replicate BLOCK`, the switches `--dynamic` and `--reduce-output`, one positional
 *    NAME; long flags may be abbreviated (`--up`), values may follow `=` (`--upstream=a`) or a
 *    short flag directly (`-oresult`); a repeated flag replaces the earlier value; `--` ends the
 *    flags; anything left over or unknown is an error;
 * 5. the name, every upstream name, the output variable and the replicated block must be
 *    identifiers (`[A-Za-z_][A-Za-z0-9_]*`); upstream names are deduplicated, first occurrence
 *    kept; a block cannot replicate itself.
 *
 * tests/magic_line_cases.json holds the cases both sides' tests run.  Pure functions, no
 * JupyterLab imports, so they are unit-tested with node's test runner.
 */
import type { BlockKind } from './protocol';

export type BlockLang = 'yaml' | 'python';

const MAGIC_KINDS = new Map<string, BlockKind>([
  ['di_source', 'source'],
  ['di_destination', 'destination'],
  ['di_block', 'python']
]);

/** What the first line of a block cell says. */
export interface IMagicLine {
  kind: BlockKind;
  /**
   * Block name; '' when the line names none yet.  When `error` is set, the name, upstream,
   * lang and output are what could be read before the error (for a badge while typing).
   */
  name: string;
  upstream: string[];
  lang: BlockLang;
  /** The notebook variable of `-o VAR`, or null. */
  output: string | null;
  /** `--replicate OTHER`: the block whose body this one runs, or null. */
  replicate: string | null;
  /** `--dynamic`: every direct downstream block runs once per item of the output. */
  dynamic: boolean;
  /** `--reduce-output`: runs once with all dynamic children's outputs in one list. */
  reduceOutput: boolean;
  /** True when the cell body is YAML (source/destination without `--lang python`). */
  yaml: boolean;
  /** Why the kernel would refuse this line, or null when it is valid. */
  error: string | null;
}

/** Python's str.isspace() characters (JavaScript's \s differs: \x1c-\x1f, \ufeff). */
const PY_SPACE =
  '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const BLANK = new RegExp(`^[${PY_SPACE}]*$`);
const TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`);
/** Python's str.splitlines() line boundaries. */
// eslint-disable-next-line no-control-regex -- splitlines() does split at \x1c, \x1d and \x1e
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;
/** shlex's whitespace. */
const ARG_SPACE = /[ \t\r\n]/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NEGATIVE_NUMBER = /^-\d+$|^-\d*\.\d+$/;
const LANGS: ReadonlyArray<string> = ['yaml', 'python'];

interface IOption {
  flags: string[];
  dest: 'upstream' | 'lang' | 'output' | 'replicate' | 'dynamic' | 'reduceOutput';
  /** nargs='+' (else exactly one value). */
  many: boolean;
  /** action='store_true': takes no value. */
  switch?: boolean;
  kinds: ReadonlyArray<BlockKind>;
}

const OPTIONS: ReadonlyArray<IOption> = [
  {
    flags: ['-u', '--upstream'],
    dest: 'upstream',
    many: true,
    kinds: ['source', 'destination', 'python']
  },
  { flags: ['--lang'], dest: 'lang', many: false, kinds: ['source', 'destination'] },
  {
    flags: ['-o', '--output'],
    dest: 'output',
    many: false,
    kinds: ['source', 'destination', 'python']
  },
  {
    flags: ['--replicate'],
    dest: 'replicate',
    many: false,
    kinds: ['source', 'destination', 'python']
  },
  {
    flags: ['--dynamic'],
    dest: 'dynamic',
    many: false,
    switch: true,
    kinds: ['source', 'destination', 'python']
  },
  {
    flags: ['--reduce-output'],
    dest: 'reduceOutput',
    many: false,
    switch: true,
    kinds: ['source', 'destination', 'python']
  }
];

/** One argument classified as argparse does: a value ('A'), a flag ('O', option null when unknown) or the first '--'. */
type Arg =
  | { type: 'A' }
  | { type: '-' }
  | { type: 'O'; option: IOption | null; flag: string; explicit: string | null };

class MagicLineError extends Error {}

/** Parse a cell's source; null when it is not a jupyter-di block cell. */
export function parseMagicLine(source: string): IMagicLine | null {
  const found = magicAndArguments(source);
  if (found === null) {
    return null;
  }
  const kind = MAGIC_KINDS.get(found.magic);
  if (kind === undefined) {
    return null;
  }
  const result: IMagicLine = {
    kind,
    name: '',
    upstream: [],
    lang: kind === 'python' ? 'python' : 'yaml',
    output: null,
    replicate: null,
    dynamic: false,
    reduceOutput: false,
    yaml: kind !== 'python',
    error: null
  };
  try {
    parseArguments(kind, splitArguments(found.line), result);
  } catch (error) {
    if (!(error instanceof MagicLineError)) {
      throw error;
    }
    result.error = error.message;
  }
  result.upstream = [...new Set(result.upstream)];
  result.yaml = result.lang === 'yaml';
  return result;
}

/** The magic's name (without %%) and its argument line, as IPython finds them; null if none. */
function magicAndArguments(source: string): { magic: string; line: string } | null {
  const first = source.split(LINE_BREAK).find(text => !BLANK.test(text));
  if (first === undefined) {
    return null;
  }
  const line = first.replace(/^[ \t]+/, '');
  if (!line.startsWith('%%')) {
    return null;
  }
  const rest = line.slice(2).replace(TRAILING_SPACE, '');
  const space = rest.indexOf(' ');
  return space < 0
    ? { magic: rest, line: '' }
    : { magic: rest.slice(0, space), line: rest.slice(space + 1) };
}

/** IPython's arg_split: shlex.shlex(line, posix=False) with whitespace_split. */
export function splitArguments(line: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (ARG_SPACE.test(line[i])) {
      i++;
      continue;
    }
    let end: number;
    if (line[i] === '"' || line[i] === "'") {
      end = line.indexOf(line[i], i + 1) + 1;
      if (end === 0) {
        throw new MagicLineError('No closing quotation');
      }
    } else {
      end = i;
      while (end < line.length && !ARG_SPACE.test(line[end])) {
        end++;
      }
    }
    tokens.push(line.slice(i, end));
    i = end;
  }
  return tokens;
}

/** argparse's parse_args over the flags of `kind`, then the name checks of block_from_args. */
function parseArguments(kind: BlockKind, tokens: string[], result: IMagicLine): void {
  if (tokens.length === 0) {
    throw new MagicLineError('a block name is needed');
  }
  const options = new Map<string, IOption>();
  for (const option of OPTIONS) {
    if (option.kinds.includes(kind)) {
      option.flags.forEach(flag => options.set(flag, option));
    }
  }
  const separator = tokens.indexOf('--');
  const args: Arg[] = tokens.map((token, i) =>
    separator >= 0 && i > separator
      ? { type: 'A' }
      : i === separator
        ? { type: '-' }
        : classify(token, options)
  );
  const pattern = args.map(a => a.type).join('');
  const extras: string[] = [];
  let named = false;

  /** The positional NAME matches `-*A-*` (the first '--' is dropped from its strings). */
  const consumePositionals = (start: number): number => {
    const match = named ? null : /^-*A-*/.exec(pattern.slice(start));
    if (match === null) {
      return start;
    }
    const strings = tokens.slice(start, start + match[0].length);
    const marker = strings.indexOf('--');
    if (marker >= 0) {
      strings.splice(marker, 1);
    }
    result.name = strings[0];
    named = true;
    return start + match[0].length;
  };

  const consumeOptional = (start: number): number => {
    const arg = args[start] as Extract<Arg, { type: 'O' }>;
    if (arg.option === null) {
      extras.push(tokens[start]);
      return start + 1;
    }
    let values: string[];
    let stop: number;
    if (arg.option.switch) {
      if (arg.explicit !== null) {
        throw new MagicLineError(
          `argument ${arg.option.flags.join('/')}: ignored explicit argument '${arg.explicit}'`
        );
      }
      values = [];
      stop = start + 1;
    } else if (arg.explicit !== null) {
      values = [arg.explicit];
      stop = start + 1;
    } else {
      const count = /^A*/.exec(pattern.slice(start + 1))![0].length;
      if (count === 0) {
        throw new MagicLineError(
          `argument ${arg.option.flags.join('/')}: expected ${arg.option.many ? 'at least one argument' : 'one argument'}`
        );
      }
      stop = start + 1 + (arg.option.many ? count : 1);
      values = tokens.slice(start + 1, stop);
    }
    store(arg.option, values);
    return stop;
  };

  const store = (option: IOption, values: string[]): void => {
    if (option.dest === 'upstream') {
      result.upstream = values;
    } else if (option.dest === 'output') {
      result.output = values[0];
    } else if (option.dest === 'replicate') {
      result.replicate = values[0];
    } else if (option.dest === 'dynamic') {
      result.dynamic = true;
    } else if (option.dest === 'reduceOutput') {
      result.reduceOutput = true;
    } else if (LANGS.includes(values[0])) {
      result.lang = values[0] as BlockLang;
    } else {
      throw new MagicLineError(
        `argument --lang: invalid choice: '${values[0]}' (choose from 'yaml', 'python')`
      );
    }
  };

  const optionIndices = args.flatMap((a, i) => (a.type === 'O' ? [i] : []));
  const lastOption = optionIndices.length ? optionIndices[optionIndices.length - 1] : -1;
  let start = 0;
  while (start <= lastOption) {
    const nextOption = optionIndices.find(i => i >= start)!;
    if (start !== nextOption) {
      const end = consumePositionals(start);
      if (end > start) {
        start = end;
        continue;
      }
    }
    if (args[start].type !== 'O') {
      extras.push(...tokens.slice(start, nextOption));
      start = nextOption;
    }
    start = consumeOptional(start);
  }
  extras.push(...tokens.slice(consumePositionals(start)));

  if (!named) {
    throw new MagicLineError('the following arguments are required: name');
  }
  if (extras.length > 0) {
    throw new MagicLineError(`unrecognized arguments: ${extras.join(' ')}`);
  }
  checkName(result.name, 'block name');
  result.upstream.forEach(up => checkName(up, 'upstream block name'));
  if (result.output !== null) {
    checkName(result.output, 'output variable');
  }
  if (result.replicate !== null) {
    checkName(result.replicate, 'replicated block name');
    if (result.replicate === result.name) {
      throw new MagicLineError('a block cannot be a replica of itself');
    }
  }
}

/** argparse's _parse_optional: is this token a flag (which one, with which inline value)? */
function classify(token: string, options: Map<string, IOption>): Arg {
  if (!token.startsWith('-')) {
    return { type: 'A' };
  }
  const exact = options.get(token);
  if (exact !== undefined) {
    return { type: 'O', option: exact, flag: token, explicit: null };
  }
  if (token.length === 1) {
    return { type: 'A' };
  }
  const eq = token.indexOf('=');
  if (eq >= 0) {
    const option = options.get(token.slice(0, eq));
    if (option !== undefined) {
      return { type: 'O', option, flag: token.slice(0, eq), explicit: token.slice(eq + 1) };
    }
  }
  const matches: Arg[] = [];
  if (token[1] === '-') {
    // an abbreviated long flag, maybe with =value
    const prefix = eq >= 0 ? token.slice(0, eq) : token;
    const explicit = eq >= 0 ? token.slice(eq + 1) : null;
    for (const [flag, option] of options) {
      if (flag.startsWith(prefix)) {
        matches.push({ type: 'O', option, flag, explicit });
      }
    }
  } else {
    // a short flag with its value attached (-oVAR)
    for (const [flag, option] of options) {
      if (flag === token.slice(0, 2)) {
        matches.push({ type: 'O', option, flag, explicit: token.slice(2) });
      } else if (flag.startsWith(token)) {
        matches.push({ type: 'O', option, flag, explicit: null });
      }
    }
  }
  if (matches.length > 1) {
    throw new MagicLineError(`ambiguous option: ${token}`);
  }
  if (matches.length === 1) {
    return matches[0];
  }
  if (NEGATIVE_NUMBER.test(token) || token.includes(' ')) {
    return { type: 'A' };
  }
  return { type: 'O', option: null, flag: token, explicit: null };
}

function checkName(name: string, what: string): void {
  if (!NAME.test(name)) {
    throw new MagicLineError(
      `${what} '${name}' is not a valid name: use letters, digits and underscores, starting with a letter`
    );
  }
}

/** "1.2s", "2m 03s": short durations for badges and nodes. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)}s`;
  }
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds - minutes * 60);
  return `${minutes}m ${rest.toString().padStart(2, '0')}s`;
}
