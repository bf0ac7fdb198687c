"""Lineage: upstream, downstream and both, depth limits, labelled edges, cycles, renderings."""

from __future__ import annotations

import json
import uuid
from collections import deque
from typing import Any

import pytest
from helpers.ledgers import Pipeline, clear_memory_root, run_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlledger import Ledger
from mlledger.errors import NotFoundError, UsageError
from mlledger.lineage import Edge, Lineage


@pytest.fixture
def ledger(fast_store_ledger: Ledger) -> Ledger:
    """This module's ledger: a memory or local store (conftest's fast_store_ledger)."""
    return fast_store_ledger


@pytest.fixture
def pipe(ledger: Ledger) -> Pipeline:
    """prep -> train -> evaluate, values flowing between the tracked calls."""
    return run_pipeline(ledger)


def digests(p: Pipeline) -> dict[str, str]:
    """The pipeline's value artifacts by role."""
    return {
        "data": p.run("prep").outputs["return"].digest,
        "model": p.run("train").outputs["return"].digest,
        "score": p.run("evaluate").outputs["return"].digest,
    }


def shape(lin: Lineage) -> tuple[set[str], set[str], set[tuple[str, str, str]]]:
    """Run ids, digests and edges of a lineage, as sets."""
    return ({r.id for r in lin.runs}, {a.digest for a in lin.artifacts},
            {tuple(e) for e in lin.edges})


def test_upstream_of_a_run_is_the_data_and_code_that_made_it(pipe: Pipeline) -> None:
    """Upstream of evaluate: the model and data it used and the runs that produced them."""
    d, ids = digests(pipe), pipe.ids
    lin = pipe.ledger.lineage(ids["evaluate"])
    assert lin.root == ids["evaluate"]
    assert lin.direction == "upstream"
    runs, arts, edges = shape(lin)
    assert runs == {ids["prep"], ids["train"], ids["evaluate"]}
    assert arts == {d["data"], d["model"]}
    assert edges == {
        (ids["prep"], "produced", d["data"]),
        (ids["train"], "used", d["data"]),
        (ids["train"], "produced", d["model"]),
        (ids["evaluate"], "used", d["model"]),
        (ids["evaluate"], "used", d["data"]),
    }
    assert all(isinstance(e, Edge) for e in lin.edges)
    assert lin.edges == sorted(lin.edges, key=lambda e: (e.source, e.label, e.target))


def test_downstream_of_data_is_everything_built_from_it(pipe: Pipeline) -> None:
    """Downstream of the data: the runs that used it, what they produced, and onwards."""
    d, ids = digests(pipe), pipe.ids
    lin = pipe.ledger.lineage(d["data"], direction="downstream")
    assert lin.root == d["data"]
    runs, arts, edges = shape(lin)
    assert runs == {ids["train"], ids["evaluate"]}
    assert arts == {d["data"], d["model"], d["score"]}
    assert edges == {
        (ids["train"], "used", d["data"]),
        (ids["evaluate"], "used", d["data"]),
        (ids["train"], "produced", d["model"]),
        (ids["evaluate"], "used", d["model"]),
        (ids["evaluate"], "produced", d["score"]),
    }


def test_both_is_upstream_plus_downstream_without_siblings(pipe: Pipeline) -> None:
    """'both' joins upstream and downstream; a run that merely shares an input is neither."""
    d, ids = digests(pipe), pipe.ids
    ledger = pipe.ledger
    with ledger.run("explore") as sibling:
        sibling.use(pipe.data, name="data")
    up = shape(ledger.lineage(ids["train"]))
    down = shape(ledger.lineage(ids["train"], direction="downstream"))
    both = shape(ledger.lineage(ids["train"], direction="both"))
    assert both == (up[0] | down[0], up[1] | down[1], up[2] | down[2])
    assert both[0] == {ids["prep"], ids["train"], ids["evaluate"]}
    assert sibling.id not in both[0]
    assert both[1] == {d["data"], d["model"], d["score"]}
    # the data's own downstream does include the sibling
    assert sibling.id in shape(ledger.lineage(d["data"], direction="downstream"))[0]


def test_depth_counts_runs_with_their_direct_inputs(pipe: Pipeline) -> None:
    """depth counts runs, each with its direct inputs: 0 is the target alone."""
    d, ids = digests(pipe), pipe.ids
    ledger = pipe.ledger
    assert shape(ledger.lineage(ids["evaluate"], depth=0)) == ({ids["evaluate"]}, set(), set())
    runs, arts, edges = shape(ledger.lineage(ids["evaluate"], depth=1))
    assert runs == {ids["evaluate"]}
    assert arts == {d["data"], d["model"]}
    assert edges == {(ids["evaluate"], "used", d["data"]), (ids["evaluate"], "used", d["model"])}
    runs, arts, _ = shape(ledger.lineage(ids["evaluate"], depth=2))
    assert runs == {ids["prep"], ids["train"], ids["evaluate"]}
    deep = shape(ledger.lineage(ids["evaluate"], depth=50))
    assert deep == shape(ledger.lineage(ids["evaluate"]))
    runs, arts, _ = shape(ledger.lineage(d["data"], direction="downstream", depth=1))
    assert runs == {ids["train"], ids["evaluate"]}
    assert arts == {d["data"], d["model"], d["score"]}


def test_depth_one_of_an_artifact_is_its_producer_with_the_producers_inputs(
    pipe: Pipeline,
) -> None:
    """Upstream of a model at depth 1: the run that made it and that run's inputs."""
    d, ids = digests(pipe), pipe.ids
    runs, arts, edges = shape(pipe.ledger.lineage(d["model"], depth=1))
    assert runs == {ids["train"]}
    assert arts == {d["model"], d["data"]}
    assert edges == {(ids["train"], "produced", d["model"]), (ids["train"], "used", d["data"])}
    assert shape(pipe.ledger.lineage(d["model"], depth=0)) == (set(), {d["model"]}, set())
    # a run and its output at the same depth show the same runs
    assert shape(pipe.ledger.lineage(d["model"], depth=2))[0] == shape(
        pipe.ledger.lineage(ids["train"], depth=2)
    )[0]


def test_depth_counts_a_parent_run_as_one_step(ledger: Ledger) -> None:
    """A nested run's parent is one level further, shown with its own inputs at depth 2."""
    with ledger.run("sweep") as parent:
        parent.use({"grid": [1, 2]}, name="grid")
        with ledger.run("trial") as child:
            child.use({"lr": 0.1}, name="cfg")
    runs, arts, edges = shape(ledger.lineage(child.id, depth=1))
    assert runs == {child.id}
    assert len(arts) == 1
    runs, arts, edges = shape(ledger.lineage(child.id, depth=2))
    assert runs == {child.id, parent.id}
    assert len(arts) == 2
    assert (child.id, "child_of", parent.id) in edges


def test_nested_runs_are_linked_child_of(ledger: Ledger) -> None:
    """A nested run has a child_of edge: upstream reaches the parent, downstream the child."""
    with ledger.run("sweep") as parent:
        for lr in (0.1, 0.2):
            with ledger.run("trial", params={"lr": lr}) as child:
                child.save({"lr": lr}, name="result")
    trials = ledger.runs(name="trial")
    assert {t.parent_id for t in trials} == {parent.id}
    up = shape(ledger.lineage(child.id))
    assert up[0] == {child.id, parent.id}
    assert (child.id, "child_of", parent.id) in up[2]
    down = shape(ledger.lineage(parent.id, direction="downstream"))
    assert down[0] == {parent.id, *trials.ids}
    assert {e for e in down[2] if e[1] == "child_of"} == {
        (t, "child_of", parent.id) for t in trials.ids}
    assert len(down[1]) == 2  # each trial's result


def test_a_run_that_uses_and_produces_one_digest_terminates(ledger: Ledger) -> None:
    """A run whose output is byte-identical to its input makes a cycle; every walk ends."""
    state = {"weights": [1, 2, 3]}
    with ledger.run("noop-update") as run:
        a = run.use(state, name="state_in")
        b = run.save(state, name="state_out")
    assert a.digest == b.digest
    for direction in ("upstream", "downstream", "both"):
        runs, arts, edges = shape(ledger.lineage(run.id, direction=direction))
        assert runs == {run.id}
        assert arts == {a.digest}
        expected = {(run.id, "used", a.digest), (run.id, "produced", a.digest)}
        assert edges == expected if direction == "both" else edges <= expected
        runs, arts, _ = shape(ledger.lineage(a.digest, direction=direction))
        assert runs == {run.id}
        assert arts == {a.digest}
    art = ledger.artifact(a.digest)
    assert art.producers == art.consumers == (run.id,)


def test_two_runs_feeding_each_other_terminate(ledger: Ledger) -> None:
    """A uses x and makes y, B uses y and makes x: the walk visits each once and stops."""
    x, y = {"v": "x"}, {"v": "y"}
    with ledger.run("a") as ra:
        dx = ra.use(x, name="x").digest
        dy = ra.save(y, name="y").digest
    with ledger.run("b") as rb:
        rb.use(y, name="y")
        rb.save(x, name="x")
    expected = {
        (ra.id, "used", dx), (ra.id, "produced", dy), (rb.id, "used", dy), (rb.id, "produced", dx)}
    for direction in ("upstream", "downstream", "both"):
        for target in (ra.id, rb.id, dx, dy):
            runs, arts, edges = shape(ledger.lineage(target, direction=direction))
            assert runs == {ra.id, rb.id}
            assert arts == {dx, dy}
            assert edges == expected


def test_renderings_are_strings(pipe: Pipeline) -> None:
    """to_json parses back to the same graph; to_dot, to_mermaid and to_text are text."""
    d, ids = digests(pipe), pipe.ids
    lin = pipe.ledger.lineage(ids["evaluate"], direction="both")
    doc = json.loads(lin.to_json())
    assert doc["root"] == ids["evaluate"]
    assert doc["direction"] == "both"
    assert {r["id"] for r in doc["runs"]} == {r.id for r in lin.runs}
    assert {r["name"] for r in doc["runs"]} == {"prep", "train", "evaluate"}
    assert {a["digest"] for a in doc["artifacts"]} == {d["data"], d["model"], d["score"]}
    assert {(e["source"], e["label"], e["target"]) for e in doc["edges"]} == shape(lin)[2]
    dot = lin.to_dot()
    assert isinstance(dot, str)
    assert dot.startswith("digraph")
    assert dot.rstrip().endswith("}")
    for e in lin.edges:
        assert f'"{e.source}" -> "{e.target}" [label="{e.label}"]' in dot
    mermaid = lin.to_mermaid()
    assert isinstance(mermaid, str)
    assert mermaid.startswith("flowchart")
    assert mermaid.count("-->|") == len(lin.edges)
    assert "-->|used|" in mermaid
    assert "-->|produced|" in mermaid
    text = lin.to_text()
    assert "3 runs, 3 artifacts" in text
    assert "train" in text
    assert "--produced-->" in text
    one = pipe.ledger.lineage(pipe.ids["prep"], depth=0).to_text()
    assert "(upstream): 1 run, 0 artifacts" in one
    # a run's label carries an id prefix that can be pasted back as a target
    for r in lin.runs:
        label = next(ln for ln in mermaid.splitlines() if f'["{r.name} ' in ln)
        prefix = label.split(f'["{r.name} ', 1)[1].split('"', 1)[0]
        assert len(prefix) >= 12
        assert pipe.ledger.get(prefix).id == r.id
        assert f"{r.name} {prefix}" in text
        assert f"{r.name} {prefix}" in dot


def test_lineage_takes_every_target_form(pipe: Pipeline) -> None:
    """A run id prefix, a digest prefix, RUN/NAME and @REF all name the same lineage root."""
    d, ids = digests(pipe), pipe.ids
    ledger = pipe.ledger
    pipe.ledger.refs.set("model/prod", d["model"])
    base = shape(ledger.lineage(d["model"]))
    for target in (d["model"].split(":")[1][:10], f"{ids['train']}/return", "@model/prod"):
        lin = ledger.lineage(target)
        assert lin.root == d["model"]
        assert shape(lin) == base
    assert ledger.lineage(ids["train"].lower()).root == ids["train"]
    with pytest.raises(NotFoundError):
        ledger.lineage("@no/such/ref")


@pytest.mark.parametrize("direction", ["up", "sideways", "", "UPSTREAM"])
def test_bad_direction_is_a_usage_error(pipe: Pipeline, direction: str) -> None:
    """A direction other than upstream/downstream/both raises UsageError naming the three."""
    with pytest.raises(UsageError) as err:
        pipe.ledger.lineage(pipe.ids["train"], direction=direction)
    assert "'upstream', 'downstream' or 'both'" in str(err.value)


@pytest.mark.parametrize("depth", [-1, 1.5, "2", True])
def test_bad_depth_is_a_usage_error(pipe: Pipeline, depth: Any) -> None:
    """A depth that is not a non-negative integer (or None) raises UsageError."""
    with pytest.raises(UsageError):
        pipe.ledger.lineage(pipe.ids["train"], depth=depth)


# -- any graph: compare with a plain breadth-first search ------------------------------


def expected_walk(
    runs: dict[str, tuple[set[str], set[str]]], start: str, direction: str, depth: int | None
) -> tuple[set[str], set[str], set[tuple[str, str, str]]]:
    """What a lineage walk must find: every run at most ``depth`` runs away (the target
    run is the first; an artifact is as far as the run it belongs to), with its direct
    inputs (upstream) or outputs (downstream)."""
    if direction == "both":
        up = expected_walk(runs, start, "upstream", depth)
        down = expected_walk(runs, start, "downstream", depth)
        return up[0] | down[0], up[1] | down[1], up[2] | down[2]
    mine = 0 if direction == "upstream" else 1  # a run's inputs or its outputs
    theirs = 1 - mine  # the runs on an artifact: its producers or its users
    # the fewest runs from the target to each node (0-1 breadth-first search)
    far: dict[str, int] = {start: 1 if start in runs else 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node in runs:
            nxt = [(a, far[node]) for a in runs[node][mine]]
        else:
            nxt = [(r, far[node] + 1) for r, io in runs.items() if node in io[theirs]]
        for n, k in nxt:
            if k < far.get(n, k + 1):
                far[n] = k
                (queue.appendleft if k == far[node] else queue.append)(n)
    label = "used" if direction == "upstream" else "produced"
    shown = {r for r in runs if r in far and (depth is None or far[r] <= depth)}
    edges = {(r, label, a) for r in shown for a in runs[r][mine]}
    arts = {a for _, _, a in edges} | ({start} if start not in runs else set())
    other = "produced" if direction == "upstream" else "used"
    # the runs on each artifact are looked up when that artifact is nearer than depth
    looked = {a for a in arts if depth is None or far[a] < depth}
    edges |= {(r, other, a) for r in shown for a in runs[r][theirs] if a in looked}
    return shown | ({start} if start in runs else set()), arts, edges


GRAPHS = st.lists(
    st.tuples(st.sets(st.integers(0, 4), max_size=3), st.sets(st.integers(0, 4), max_size=3)),
    min_size=1, max_size=6,
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(GRAPHS, st.data())
def test_any_graph_walk_matches_breadth_first_search(
    graph: list[tuple[set[int], set[int]]], data: st.DataObject
) -> None:
    """On random use/produce graphs (cycles included) every walk equals a plain BFS."""
    name = f"/mlledger-l-{uuid.uuid4().hex}"
    ledger = Ledger(f"memory://{name}", capture_files=False)
    try:
        values = [{"value": i} for i in range(5)]
        recorded: dict[str, tuple[set[str], set[str]]] = {}
        for ins, outs in graph:
            with ledger.run("node") as run:
                used = {run.use(values[i], name=f"in{i}").digest for i in sorted(ins)}
                made = {run.save(values[i], name=f"out{i}").digest for i in sorted(outs)}
            recorded[run.id] = (used, made)
        nodes = sorted(recorded) + sorted({d for io in recorded.values() for s in io for d in s})
        for _ in range(4):
            start = data.draw(st.sampled_from(nodes))
            direction = data.draw(st.sampled_from(["upstream", "downstream", "both"]))
            depth = data.draw(st.one_of(st.none(), st.integers(0, 5)))
            got = shape(ledger.lineage(start, direction=direction, depth=depth))
            want = expected_walk(recorded, start, direction, depth)
            assert got == want, (start, direction, depth)
    finally:
        ledger.catalog.close()
        clear_memory_root(name)
