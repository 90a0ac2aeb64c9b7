/**
 * The text of a new block's cell (pure: unit-tested with node, used by newblock.ts): a free block
 * name, and a connector's template with its name and upstream filled in.
 */

export type NewBlockKind = 'source' | 'destination' | 'python';

/** `base`, else `base_2`, `base_3`, ...: a name no block of the notebook has. */
export function freeName(base: string, taken: Iterable<string>): string {
  const names = new Set(taken);
  const clean = base.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=\d)/, 'b_') || 'block';
  if (!names.has(clean)) {
    return clean;
  }
  let i = 2;
  while (names.has(`${clean}_${i}`)) {
    i += 1;
  }
  return `${clean}_${i}`;
}

/** The cell source of a new block: a connector's template, or a Python block's. */
export function blockSource(
  kind: NewBlockKind,
  name: string,
  upstream: string | null,
  template: string | null
): string {
  if (kind === 'python') {
    return upstream !== null
      ? `%%di_block ${name} --upstream ${upstream}\n@transformer\ndef ${name}(${upstream}, *args, **kwargs):\n    return ${upstream}\n`
      : `%%di_block ${name}\n@data_loader\ndef ${name}(*args, **kwargs):\n    return [{"id": 1}, {"id": 2}]\n`;
  }
  let text = (template ?? '').split('{name}').join(name);
  text =
    upstream !== null
      ? text.split('{upstream}').join(upstream)
      : text.replace(' --upstream {upstream}', '');
  return text;
}
