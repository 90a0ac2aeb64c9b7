"""The block dependency graph: registration, validation, ordering.

Responsibilities: keep blocks keyed by name (and by JupyterLab cell id when the
kernel knows it), reject duplicate names and unknown upstreams with messages
that name the cells, find cycles (reporting the blocks on them), and give
topological orders, ancestors and descendants.  It knows nothing about running
blocks; that is the executor's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ..errors import GraphError
from .block import Block


class Graph:
    """A mutable DAG of blocks."""

    def __init__(self, blocks: Iterable[Block] = ()) -> None:
        self.blocks: dict[str, Block] = {}
        for block in blocks:
            self.add(block)

    # -- registration -----------------------------------------------------------------
    def add(self, block: Block) -> Block | None:
        """Add or redefine a block; returns the block it replaced, if any.

        A cell that is re-run replaces its own block (same cell id, or same name
        when there are no cell ids).  A cell that reuses another cell's name is
        an error; a cell that was renamed drops its old name.
        """
        existing = self.blocks.get(block.name)
        if existing is not None and existing.cell_id and block.cell_id and existing.cell_id != block.cell_id:
            raise GraphError(
                f"the name {block.name!r} is already used by another cell.",
                block=block.name,
                fix="give this block a different name, or delete the other cell's block with %di_remove.",
            )
        if block.cell_id:
            for name, other in list(self.blocks.items()):
                if other.cell_id == block.cell_id and name != block.name:
                    del self.blocks[name]
        self.blocks[block.name] = block
        return existing

    def remove(self, name: str) -> None:
        self.blocks.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self.blocks

    def __getitem__(self, name: str) -> Block:
        return self.blocks[name]

    def __len__(self) -> int:
        return len(self.blocks)

    # -- validation ---------------------------------------------------------------------
    def check_upstreams(self, names: Iterable[str] | None = None) -> None:
        for name in names if names is not None else self.blocks:
            block = self.blocks[name]
            for up in block.upstream:
                if up not in self.blocks:
                    raise GraphError(
                        f"upstream block {up!r} is not defined.",
                        block=name,
                        fix=f"run the cell that defines {up!r} first, or fix the name in --upstream.",
                    )
                if up == name:
                    raise GraphError("a block cannot be its own upstream.", block=name, fix="remove it from --upstream.")

    def find_cycle(self) -> list[str] | None:
        """One cycle as a list of block names (first == last), or None."""
        WHITE, GREY, BLACK = 0, 1, 2
        color = {name: WHITE for name in self.blocks}
        for start in self.blocks:
            if color[start] != WHITE:
                continue
            stack: list[tuple[str, Iterator[str]]] = [(start, iter(self._known_upstream(start)))]
            path = [start]
            color[start] = GREY
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    color[node] = BLACK
                    stack.pop()
                    path.pop()
                elif color[child] == GREY:
                    cycle = path[path.index(child) :] + [child]
                    return list(reversed(cycle))
                elif color[child] == WHITE:
                    color[child] = GREY
                    path.append(child)
                    stack.append((child, iter(self._known_upstream(child))))
        return None

    def validate(self, names: Iterable[str] | None = None) -> None:
        self.check_upstreams(names)
        cycle = self.find_cycle()
        if cycle:
            raise GraphError(
                f"the blocks form a cycle: {' -> '.join(cycle)}.",
                block=cycle[0],
                fix="remove one of these upstream links.",
            )

    def _known_upstream(self, name: str) -> list[str]:
        return [u for u in self.blocks[name].upstream if u in self.blocks]

    # -- traversal ----------------------------------------------------------------------
    def downstream(self, name: str) -> list[str]:
        return [b.name for b in self.blocks.values() if name in b.upstream]

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self._known_upstream(name))
        while todo:
            up = todo.pop()
            if up not in seen:
                seen.add(up)
                todo.extend(self._known_upstream(up))
        return seen

    def descendants(self, name: str) -> set[str]:
        children: dict[str, list[str]] = {n: [] for n in self.blocks}
        for block in self.blocks.values():
            for up in self._known_upstream(block.name):
                children[up].append(block.name)
        seen: set[str] = set()
        todo = list(children[name])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(children[node])
        return seen

    def topological_order(self, names: Iterable[str] | None = None) -> list[str]:
        """Blocks in dependency order (stable: ties keep definition order)."""
        wanted = set(self.blocks if names is None else names)
        order: list[str] = []
        done: set[str] = set()
        position = {n: i for i, n in enumerate(self.blocks)}
        remaining = sorted(wanted, key=position.__getitem__)
        indegree = {n: sum(1 for u in self._known_upstream(n) if u in wanted) for n in remaining}
        ready = [n for n in remaining if indegree[n] == 0]
        children: dict[str, list[str]] = {n: [] for n in remaining}
        for n in remaining:
            for u in self._known_upstream(n):
                if u in wanted:
                    children[u].append(n)
        while ready:
            node = ready.pop(0)
            order.append(node)
            done.add(node)
            for child in children[node]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
            ready.sort(key=position.__getitem__)
        if len(order) != len(remaining):
            self.validate()
        return order

    def to_mermaid(self, statuses: Mapping[str, str] | None = None) -> str:
        """The graph as a mermaid flowchart (JupyterLab >= 4.1 renders it in markdown).

        A dynamic block's children (``BLOCK:ITEM`` names among ``statuses``, from the last run) are
        drawn in a box under their block, coloured by their own status (the first ``MAX_CHILDREN``,
        then a count); a replica is labelled with the block it replicates."""
        shapes = {"source": ('[("', '")]'), "destination": ('[/"', '"/]'), "python": ('["', '"]')}
        lines = ["flowchart LR"]
        for block in self.blocks.values():
            left, right = shapes[block.kind]
            notes = [block.kind] + (["dynamic"] if block.dynamic else []) + (["reduce"] if block.reduce_output else [])
            if block.replicate:
                notes.append(f"replica of {block.replicate}")
            label = f"{block.name}<br/><small>{' · '.join(notes)}</small>"
            lines.append(f"    {block.name}{left}{label}{right}")
        for block in self.blocks.values():
            for up in self._known_upstream(block.name):
                lines.append(f"    {up} --> {block.name}")
        colours = {"done": "#c8e6c9", "failed": "#ffcdd2", "running": "#fff9c4", "skipped": "#e0e0e0"}
        children: dict[str, list[tuple[str, str]]] = {}
        for name, status in (statuses or {}).items():
            parent, sep, _ = name.partition(":")
            if sep and parent in self.blocks:
                children.setdefault(parent, []).append((name, str(status)))
        for parent, kids in children.items():
            lines.append(f'    subgraph {parent}__children["{parent}: {len(kids)} children"]')
            for index, (name, status) in enumerate(kids[: self.MAX_CHILDREN]):
                label = name.replace('"', "#quot;")
                lines.append(f'        {parent}__c{index}["{label}"]')
                if status in colours:
                    lines.append(f"        style {parent}__c{index} fill:{colours[status]}")
            if len(kids) > self.MAX_CHILDREN:
                lines.append(f'        {parent}__more["… {len(kids) - self.MAX_CHILDREN} more"]')
            lines.append("    end")
            lines.append(f"    {parent} -.- {parent}__children")
        for name, status in (statuses or {}).items():
            if name in self.blocks and status in colours:
                lines.append(f"    style {name} fill:{colours[status]}")
        return "\n".join(lines)

    MAX_CHILDREN = 20
    """Children drawn per dynamic block in the mermaid graph (the rest are counted)."""
