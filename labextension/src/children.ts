/**
 * A dynamic block's children (`BLOCK:ITEM`, from the kernel's status messages) grouped under their
 * block, so the side panel draws one node per block with its children's statuses inside it, not
 * hundreds of loose nodes.  Pure functions, unit-tested with node's test runner.
 */
import type { BlockStatus, IBlock } from './protocol';

export interface IGrouped {
  /** The blocks drawn as nodes (children removed). */
  blocks: IBlock[];
  /** Block name -> its children, in the order their statuses arrived. */
  children: Map<string, IBlock[]>;
}

/** The block a child name belongs to, or null (the kernel escapes ':' out of item ids). */
export function parentOf(name: string, known: ReadonlySet<string>): string | null {
  const at = name.indexOf(':');
  if (at <= 0) {
    return null;
  }
  const parent = name.slice(0, at);
  return known.has(parent) ? parent : null;
}

export function groupChildren(all: IBlock[]): IGrouped {
  const known = new Set(all.filter(b => !b.name.includes(':')).map(b => b.name));
  const blocks: IBlock[] = [];
  const children = new Map<string, IBlock[]>();
  for (const block of all) {
    const parent = parentOf(block.name, known);
    if (parent === null) {
      blocks.push(block);
    } else {
      children.set(parent, [...(children.get(parent) ?? []), block]);
    }
  }
  return { blocks, children };
}

/** "3 children: 2 done, 1 failed" */
export function childSummary(children: IBlock[]): string {
  const counts = new Map<BlockStatus, number>();
  for (const child of children) {
    counts.set(child.status, (counts.get(child.status) ?? 0) + 1);
  }
  const parts = [...counts].map(([status, n]) => `${n} ${status}`);
  const noun = children.length === 1 ? 'child' : 'children';
  return `${children.length} ${noun}: ${parts.join(', ')}`;
}
