/**
 * Parsing of a jupyter-di cell's first line (`%%di_source NAME --upstream A B`).
 *
 * Pure functions, no JupyterLab imports, so they are unit-tested with node's test runner.
 */
import type { BlockKind } from './protocol';

const MAGIC_KINDS: { [magic: string]: BlockKind } = {
  '%%di_source': 'source',
  '%%di_destination': 'destination',
  '%%di_block': 'python'
};

/** What the first line of a block cell says. */
export interface IMagicLine {
  kind: BlockKind;
  /** Block name; '' when the line names none yet. */
  name: string;
  upstream: string[];
  /** True when the cell body is YAML (source/destination without `--lang python`). */
  yaml: boolean;
}

/** Parse a cell's source; null when it is not a jupyter-di block cell. */
export function parseMagicLine(source: string): IMagicLine | null {
  const firstLine = source.replace(/^\s*\n/, '').split('\n', 1)[0].trim();
  const tokens = firstLine.split(/\s+/).filter(t => t.length > 0);
  const kind = MAGIC_KINDS[tokens[0] ?? ''];
  if (kind === undefined) {
    return null;
  }
  let name = '';
  const upstream: string[] = [];
  let lang = kind === 'python' ? 'python' : 'yaml';
  let option: string | null = null;
  for (const token of tokens.slice(1)) {
    if (token.startsWith('-')) {
      const [flag, inline] = token.split('=', 2);
      option = flag;
      if (inline !== undefined) {
        consume(inline);
        option = flag === '--upstream' || flag === '-u' ? option : null;
      }
      continue;
    }
    consume(token);
  }
  return { kind, name, upstream, yaml: lang === 'yaml' };

  function consume(value: string): void {
    if (option === '--upstream' || option === '-u') {
      upstream.push(...value.split(',').filter(v => v.length > 0));
    } else if (option === '--lang' || option === '-l') {
      lang = value;
      option = null;
    } else if (option !== null) {
      option = null; // value of another flag
    } else if (name === '') {
      name = value;
    }
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
