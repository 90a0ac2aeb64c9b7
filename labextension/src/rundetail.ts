/**
 * A recorded run as the side panel's run details show it (no DOM here, so node tests cover it):
 * one row per stream with a source stream's bookmarks before and after, and the errors once.
 */
import type { IRunRecord } from './protocol';

/** One row per stream of the run: rows, table, and a source stream's bookmarks. */
export function streamRows(run: IRunRecord): string[][] {
  const rows: string[][] = [];
  for (const block of run.blocks) {
    for (const [stream, info] of Object.entries(block.streams)) {
      const source = 'bookmark_before' in info || 'bookmark_after' in info;
      rows.push([
        block.name,
        stream,
        (info.rows ?? 0).toLocaleString('en-US'),
        info.table ?? '',
        source ? formatBookmark(info.bookmark_before) : '',
        source ? formatBookmark(info.bookmark_after) : ''
      ]);
    }
  }
  return rows;
}

/** The run's errors (one per failed block) and warnings, each once. */
export function runErrors(run: IRunRecord): string[] {
  const lines = run.blocks.filter(b => b.error).map(b => `block '${b.name}': ${b.error}`);
  for (const block of run.blocks) {
    for (const w of block.warnings ?? []) {
      lines.push(`warning: block '${block.name}', stream '${w.stream ?? ''}': ${w.message ?? ''}`);
    }
  }
  return lines;
}

/** A bookmark readably: `updated_at = 2024-01-03T00:00:00+00:00`; none: "no bookmark yet". */
export function formatBookmark(bookmark: unknown): string {
  if (bookmark === null || bookmark === undefined) {
    return 'no bookmark yet';
  }
  if (typeof bookmark === 'object' && !Array.isArray(bookmark)) {
    return Object.entries(bookmark as Record<string, unknown>)
      .map(([k, v]) => `${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(', ');
  }
  return typeof bookmark === 'string' ? bookmark : JSON.stringify(bookmark);
}
