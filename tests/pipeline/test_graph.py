"""Table-driven tests of the block graph: cycles, diamonds, ordering, traversal."""

from __future__ import annotations

import pytest

from jupyter_di.errors import GraphError
from jupyter_di.pipeline.block import Block
from jupyter_di.pipeline.graph import Graph


def graph_of(edges: dict[str, list[str]]) -> Graph:
    return Graph(Block(name=n, kind="python", body="", upstream=ups) for n, ups in edges.items())


CASES = [
    # (id, edges, expected topological order, expected cycle or None)
    ("chain", {"a": [], "b": ["a"], "c": ["b"]}, ["a", "b", "c"], None),
    ("diamond", {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}, ["a", "b", "c", "d"], None),
    ("defined-out-of-order", {"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": []}, ["a", "c", "b", "d"], None),
    ("two-components", {"x": [], "a": [], "y": ["x"], "b": ["a"]}, ["x", "a", "y", "b"], None),
    ("self-free-cycle", {"a": ["c"], "b": ["a"], "c": ["b"]}, None, {"a", "b", "c"}),
    ("cycle-behind-a-root", {"root": [], "a": ["root", "b"], "b": ["a"]}, None, {"a", "b"}),
]


@pytest.mark.parametrize("edges,order,cycle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_order_and_cycles(edges, order, cycle):
    graph = graph_of(edges)
    if cycle is None:
        assert graph.find_cycle() is None
        assert graph.topological_order() == order
    else:
        found = graph.find_cycle()
        assert found is not None and found[0] == found[-1]
        assert set(found) == cycle
        with pytest.raises(GraphError) as err:
            graph.validate()
        assert "cycle" in str(err.value)
        for name in cycle:
            assert name in str(err.value)


def test_ancestors_and_descendants_of_a_diamond():
    graph = graph_of({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []})
    assert graph.ancestors("d") == {"a", "b", "c"}
    assert graph.descendants("a") == {"b", "c", "d"}
    assert graph.descendants("e") == set()
    assert graph.topological_order({"b", "d", "a", "c"}) == ["a", "b", "c", "d"]


def test_unknown_upstream_names_block_and_fix():
    graph = graph_of({"a": ["missing"]})
    with pytest.raises(GraphError) as err:
        graph.validate()
    assert err.value.block == "a"
    assert "'missing' is not defined" in str(err.value)
    assert "Fix:" in str(err.value)


def test_duplicate_name_from_another_cell_is_refused_and_rename_drops_old_name():
    graph = Graph()
    graph.add(Block("a", "python", "", cell_id="cell-1"))
    with pytest.raises(GraphError) as err:
        graph.add(Block("a", "python", "", cell_id="cell-2"))
    assert "already used by another cell" in str(err.value)
    graph.add(Block("renamed", "python", "", cell_id="cell-1"))
    assert list(graph.blocks) == ["renamed"]


def test_mermaid_has_nodes_edges_and_status_colours():
    graph = Graph(
        [
            Block("src", "source", "", lang="yaml"),
            Block("t", "python", "", upstream=["src"]),
            Block("dst", "destination", "", upstream=["t"], lang="yaml"),
        ]
    )
    text = graph.to_mermaid({"t": "failed"})
    assert text.splitlines()[0] == "flowchart LR"
    assert "src --> t" in text and "t --> dst" in text
    assert "style t fill:#ffcdd2" in text
