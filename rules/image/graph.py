"""`invoke graph`: the action graph of a line's image, for people (as Bazel's aquery).

Every key is known before anything runs (rules.graph.action), so the whole graph is listed
with, for each action, whether the action cache holds its result ("yes"), or it would run
("no"), or it is not needed because every action that uses it is cached ("not needed").
"""

from dataclasses import dataclass
from pathlib import Path

from rules.graph import action_cache, scheduler
from rules.image.build import line_graph
from rules.load.model import Project


@dataclass
class Row:
    kind: str
    label: str
    key: str
    inputs: dict[str, str]
    cached: str


def describe(project: Project, line_name: str, cache: Path) -> list[Row]:
    graph = line_graph(project, project.line(line_name), Path(cache))
    hits, to_run = scheduler.plan([*graph.layers, *graph.sboms.values()], cache)
    runs = {a.key for a in to_run}
    rows = []
    for action in graph.all_actions():
        if action in hits or (action.key not in runs and action_cache.get(cache, action.key)):
            state = "yes"
        else:
            state = "no" if action.key in runs else "not needed"
        rows.append(Row(action.kind, action.label, action.key, action.named_inputs(), state))
    return rows
