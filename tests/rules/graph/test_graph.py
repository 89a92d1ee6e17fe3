"""The action graph on its own: keys, the one record format, what counts as a hit, and the
scheduler (deps first, each key once, cached actions skip their deps, the first failure stops
the run and leaves no record)."""

import hashlib
import json
import threading
import time

import pytest

from rules.common import atomic
from rules.fetch.download import cas_path
from rules.graph import action_cache, scheduler
from rules.graph.action import Action, Made


def blob_action(label, text, deps=(), calls=None, fail=False, urgent=False, inputs=None):
    def run(ctx):
        if calls is not None:
            calls.append((label, sorted(r.label for r in ctx.records.values())))
        if fail:
            raise RuntimeError(f"{label} failed on purpose")
        data = text.encode()
        sha = hashlib.sha256(data).hexdigest()
        atomic.write_bytes(cas_path(ctx.cache, sha), data)
        return Made(blobs={"out": (sha, len(data))}, values={"label": label})
    return Action("test", label, inputs or {"text": text}, run, deps=tuple(deps), urgent=urgent)


def test_keys_are_the_digest_of_kind_and_named_inputs_only():
    a = blob_action("a", "x")
    assert a.key == blob_action("other label", "x").key  # the label is for people
    assert a.key != blob_action("a", "y").key
    assert a.key != Action("other kind", "a", {"text": "x"}, a.run).key
    b1, b2 = blob_action("b", "z", deps=[a]), blob_action("b", "z", deps=[blob_action("a", "y")])
    assert b1.key != b2.key  # an input made by another action is named by that action's key
    assert b1.named_inputs() == {"text": "z", "test: a": a.key}


def test_a_record_is_written_after_its_outputs_and_a_hit_needs_them_all(tmp_path):
    a = blob_action("a", "hello")
    outcome = scheduler.run([a], tmp_path)[a]
    assert not outcome.hit and outcome.record.blob(tmp_path, "out").read_text() == "hello"
    data = json.loads(action_cache.record_path(tmp_path, a.key).read_text())
    assert data == {"format": 1, "kind": "test", "label": "a", "key": a.key,
                    "inputs": {"text": "hello"},
                    "blobs": {"out": [hashlib.sha256(b"hello").hexdigest(), 5]},
                    "trees": {}, "values": {"label": "a"}}
    assert scheduler.run([a], tmp_path)[a].hit
    outcome.record.blob(tmp_path, "out").unlink()  # an output gone: a miss, made again
    again = scheduler.run([a], tmp_path)[a]
    assert not again.hit and again.record.blob(tmp_path, "out").exists()


@pytest.mark.parametrize("damage", ["{not json", "", '{"format": 0}', "[]"])
def test_a_torn_or_foreign_record_is_a_miss_not_an_error(tmp_path, damage):
    a = blob_action("a", "hello")
    path = action_cache.record_path(tmp_path, a.key)
    path.parent.mkdir(parents=True)
    path.write_text(damage)
    assert action_cache.get(tmp_path, a.key) is None
    assert not scheduler.run([a], tmp_path)[a].hit
    assert action_cache.get(tmp_path, a.key) is not None


def test_deps_run_first_once_per_key_and_cached_actions_skip_their_deps(tmp_path):
    calls = []
    base = blob_action("base", "b", calls=calls)
    same_base = blob_action("base again", "b", calls=calls)  # one key: one action
    left = blob_action("left", "l", deps=[base], calls=calls)
    right = blob_action("right", "r", deps=[same_base], calls=calls)
    top = blob_action("top", "t", deps=[left, right], calls=calls)
    outcomes = scheduler.run([top], tmp_path)
    labels = [c[0] for c in calls]
    assert labels.count("base") + labels.count("base again") == 1
    assert labels.index("top") == 3 and set(labels[1:3]) == {"left", "right"}
    assert calls[-1][1] == ["left", "right"]  # an action gets its deps' records
    assert all(o.hit is False for o in outcomes.values())
    calls.clear()
    hits, to_run = scheduler.plan([top], tmp_path)
    assert list(hits) == [top] and to_run == []  # a cached action needs none of its deps
    for action in (base, left, right):
        action_cache.record_path(tmp_path, action.key).unlink()
    assert scheduler.run([top], tmp_path)[top].hit and calls == []


def test_the_first_failure_stops_the_run_and_leaves_no_record(tmp_path):
    calls = []
    started = threading.Event()

    def slow_run(ctx):
        started.set()
        time.sleep(0.3)
        return Made()
    slow = Action("test", "slow", {"n": "1"}, slow_run)
    broken = blob_action("broken", "x", calls=calls, fail=True)
    after = blob_action("after", "y", deps=[broken], calls=calls)
    with pytest.raises(RuntimeError, match="broken failed on purpose"):
        scheduler.run([slow, after], tmp_path)
    assert action_cache.read(tmp_path, broken.key) is None
    assert action_cache.read(tmp_path, after.key) is None
    assert [c[0] for c in calls] == ["broken"]  # what depended on it never ran


def test_explain_compares_with_the_last_build_of_the_same_target(tmp_path):
    """The target map keeps label -> key of the last build, the records keep the inputs."""
    a1 = blob_action("a", "one", inputs={"src/x.py": "1", "src/y.py": "1"})
    scheduler.run([a1], tmp_path)
    action_cache.save_build(tmp_path, "image 9.9", {"test: a": a1.key})
    a2 = blob_action("a", "two", inputs={"src/x.py": "2", "src/z.py": "1"})
    previous = action_cache.last_build(tmp_path, "image 9.9")
    old = action_cache.read(tmp_path, previous["test: a"])
    assert old.inputs == {"src/x.py": "1", "src/y.py": "1"}
    assert {n for n in a2.inputs if old.inputs.get(n) != a2.inputs[n]} == {"src/x.py",
                                                                          "src/z.py"}
