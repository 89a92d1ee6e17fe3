"""How a line's Python packages are cut into layers: a big locked file alone, the small ones in
hash buckets by name, so one package bumped rewrites one small layer; every package in exactly
one layer; the layer count well inside what an image may hold."""

import pytest

from rules.common.cache import default_cache
from rules.image import layers
from rules.image.build import line_graph
from rules.load import project
from tests.fixtures import REPO, run_invoke

MAX_IMAGE_LAYERS = 125  # Docker refuses deeper images ("max depth exceeded")
USER_LAYERS = 20  # left for the ONBUILD triggers and a project's own Dockerfile


def test_big_files_are_alone_small_ones_in_stable_buckets():
    proj = project.load(REPO)
    line = proj.line("4.2")
    everything = [n for _, names in layers.python_groups(proj, line) for n in names]
    sizes = {n: (layers.OWN_LAYER_BYTES if i % 3 == 0 else 1000) for i, n in
             enumerate(sorted(everything))}
    plan = layers.python_groups(proj, line, sizes)
    flat = [n for _, names in plan for n in names]
    assert sorted(flat) == sorted(everything) and len(flat) == len(set(flat))  # each once
    alone = {names[0] for title, names in plan if title.startswith("python ") and
             not title.startswith("python deps")}
    assert alone == {n for n, s in sizes.items() if s >= layers.OWN_LAYER_BYTES} - {
        n for title, names in plan if title in ("apache-airflow", "providers") for n in names}
    for title, names in plan:
        if title.startswith("python deps (bucket "):
            assert {layers.bucket(n) for n in names} == {int(title[-3:-1])}
    # a package's layer does not depend on what else the lock holds or how big it is
    fewer = {n: s for n, s in sizes.items() if n != sorted(sizes)[1]}
    again = layers.python_groups(proj, line, fewer)
    where = {n: t for t, names in plan for n in names}
    assert all(where[n] == t for t, names in again for n in names)


@pytest.fixture(scope="module")
def fetched():
    """The file choices of every lock (they hold each file's size): `invoke fetch`."""
    proc = run_invoke(REPO, "fetch")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_one_bumped_dependency_changes_one_layer_key(fetched):
    """A new wheel of one small package (its sha256 in the lock) changes the key of exactly one
    layer action: its bucket's."""
    proj = project.load(REPO)
    graph = line_graph(proj, proj.line("4.2"), default_cache())
    keys = {a.label: a.key for a in graph.layers}
    small = next(a for a in graph.layers if a.label.startswith("python deps (bucket"))
    name = next(n.removeprefix("wheel ") for n in small.inputs if n.startswith("wheel "))
    bumped = [a for a in graph.layers if f"wheel {name}" in a.inputs]
    assert bumped == [small]
    small.inputs[f"wheel {name}"] = "0" * 64
    small._key = None
    assert [a.label for a in graph.layers if a.key != keys[a.label]] == [small.label]


@pytest.mark.slow
def test_every_line_leaves_room_for_the_users_layers(fetched):
    proj = project.load(REPO)
    for name in proj.lines:
        graph = line_graph(proj, proj.line(name), default_cache())
        assert len(graph.layers) <= MAX_IMAGE_LAYERS - USER_LAYERS, (name, len(graph.layers))
