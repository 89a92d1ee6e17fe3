"""The image policy applied (rules.image.policy, rules.image.config, rules.image.layers):
tags named once, the providers layer from the provider_set, and a value changed in BUILD
reaching the config and the keys of the layers made from it. Fast: no image is built."""

import dataclasses
import json
import shutil

import pytest

from rules.common.errors import UserError
from rules.image import config, layers, policy
from rules.load import project
from rules.lock import requirements_file
from tests.fixtures import REPO


@pytest.fixture(scope="module")
def proj():
    return project.load(REPO)


@pytest.fixture
def repo_copy(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__",
                                                             "out"))
    return dst


def locked(proj, line) -> set[str]:
    text = (REPO / proj.locks[line.airflow].lock).read_text()
    return {e.name for e in requirements_file.parse(text)[1]}


def test_tags_are_named_once_by_the_policy(proj):
    image = proj.image(proj.lines["4.2"])
    assert policy.flavors(image) == ("onbuild", "base")
    assert [policy.tag(image, "4.2.1", f) for f in ("onbuild", "base")] == ["4.2.1", "4.2.1-base"]
    assert policy.floating_tags(image, "4.2.1", "base") == ("4.2-base",)
    assert policy.reference(image, "4.2.1") == "runtime:4.2.1"
    with pytest.raises(UserError, match="unknown flavor 'slim'; flavors: onbuild, base"):
        policy.tag(image, "4.2.1", "slim")
    built = config.image_of(proj, proj.lines["4.2"], "base", [], [])
    version = proj.lines["4.2"].version
    assert (built.repo, built.tags) == ("runtime", [f"{version}-base", "4.2-base"])


def test_the_config_of_4_2_is_the_declared_one(proj):
    line = proj.lines["4.2"]
    airflow = proj.airflow_version(line.airflow)
    onbuild = config.image_config(proj, line, "onbuild")
    base = config.image_config(proj, line, "base")
    assert "OnBuild" not in base and onbuild.pop("OnBuild")[-2:] == \
        ["USER astro", "COPY --chown=astro:0 . ."]
    assert onbuild == base
    assert base["User"] == "astro" and base["WorkingDir"] == "/usr/local/airflow"
    assert base["Env"][:6] == [
        "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "AIRFLOW_HOME=/usr/local/airflow", f"ASTRONOMER_RUNTIME_VERSION={line.version}",
        f"RUNTIME_VERSION={line.version}", f"AIRFLOW_VERSION={airflow}",
        "PIP_CONSTRAINT=/usr/local/share/runtime/constraints.txt"]
    assert base["Labels"]["io.astronomer.docker.runtime.lts"] == "true"
    assert base["ExposedPorts"] == {"8080/tcp": {}} and base["Cmd"] == []
    assert config.version_metadata(proj, line)["image"] == f"runtime:{line.version}"
    annotations = config.image_of(proj, line, "base", [], []).annotations
    assert annotations["org.opencontainers.image.title"] == f"Runtime {line.version} (base)"
    assert annotations["org.opencontainers.image.ref.name"] == f"{line.version}-base"


def test_the_providers_layer_is_the_provider_sets(proj):
    for name, line in proj.lines.items():
        providers = dict(layers.python_groups(proj, line))["providers"]
        pset = proj.provider_sets[line.providers]
        assert "openlineage-airflow" in providers and "openlineage-python" in providers
        assert "apache-airflow-providers-sqlite" in providers  # Airflow's own: layer_includes
        assert "apache-airflow-providers-cncf-kubernetes" in providers  # extra cncf.kubernetes
        # a tool, and what only a provider requires, stay in the dependency layers
        assert "pytest" not in providers and "sqlparse" not in providers
        assert ("astronomer-providers" in providers) == ("astronomer-providers" in pset.packages)
        assert set(providers) == policy.provider_distributions(pset, locked(proj, line), "lock")
        everything = [n for _, names in layers.python_groups(proj, line) for n in names]
        assert sorted(everything) == sorted(locked(proj, line)), name


def test_a_tool_moved_to_packages_moves_to_the_providers_layer(proj):
    line = proj.lines["4.2"]
    pset = proj.provider_sets[line.providers]
    moved = dataclasses.replace(pset, packages=pset.packages + ("pytest",), tools=())
    assert "pytest" in policy.provider_distributions(moved, locked(proj, line), "lock")
    without = dataclasses.replace(pset, extra_provider="")  # extras bring no provider
    got = policy.provider_distributions(without, locked(proj, line), "lock")
    assert "apache-airflow-providers-amazon" not in got and "astronomer-providers" in got


def test_layer_includes_must_be_locked(proj):
    line = proj.lines["3.0"]  # Airflow 2.1: no http provider
    pset = proj.provider_sets[line.providers]
    bad = dataclasses.replace(pset, layer_includes=("apache-airflow-providers-http",))
    with pytest.raises(UserError, match=r"//providers:airflow-2.1: field 'layer_includes': "
                                        r"apache-airflow-providers-http is not in the lock"):
        policy.provider_distributions(bad, locked(proj, line), "the lock")


class FakeInputs:
    """What config_files reads of the Debian root."""

    def root_text(self, name):
        assert name == "etc/passwd"
        return "root:x:0:0:root:/root:/bin/bash\n"


def config_of(root):
    proj = project.load(root)
    line = proj.lines["4.2"]
    lock = (root / proj.locks[line.airflow].lock).read_text()
    return (proj, line, layers.config_inputs(proj, line, lock, "rootfs-key"),
            config.config_files(proj, line, lock, FakeInputs()))


def test_another_uid_in_build_changes_the_config_layers_inputs(repo_copy):
    proj, line, before, files = config_of(REPO)
    assert files["etc/passwd"].decode().splitlines()[-1] == \
        "astro:x:50000:0:astro:/usr/local/airflow:/bin/bash"
    build = repo_copy / "runtime" / "BUILD"
    build.write_text(build.read_text().replace("    uid = 50000,", "    uid = 60000,"))
    _, _, after, files = config_of(repo_copy)
    assert files["etc/passwd"].decode().splitlines()[-1] == \
        "astro:x:60000:0:astro:/usr/local/airflow:/bin/bash"
    assert {k for k in before if before[k] != after[k]} == {"passwd entry", "home owner"}
    assert after["home owner"] == "60000:0"


def test_another_home_changes_config_env_and_module_layers(repo_copy):
    proj, line, before, _ = config_of(REPO)
    module = proj.modules["//security:security"]  # puts webserver_config.py in the home
    module_before = layers.module_inputs(proj, line, module)
    build = repo_copy / "runtime" / "BUILD"
    build.write_text(build.read_text().replace('home = "/usr/local/airflow"', 'home = "/opt/app"'))
    proj2, line2, after, files = config_of(repo_copy)
    assert {k for k in before if before[k] != after[k]} == {"passwd entry", "home"}
    assert files["etc/passwd"].decode().endswith(":/opt/app:/bin/bash\n")
    cfg = config.image_config(proj2, line2, "base")
    assert cfg["WorkingDir"] == "/opt/app" and "AIRFLOW_HOME=/opt/app" in cfg["Env"]
    module_after = layers.module_inputs(proj2, proj2.lines["4.2"],
                                        proj2.modules["//security:security"])
    assert {k for k in module_before if module_before[k] != module_after[k]} == {"home"}


def test_version_json_names_the_default_flavors_image(repo_copy):
    build = repo_copy / "runtime" / "BUILD"
    build.write_text(build.read_text().replace('repository = "runtime"', 'repository = "rt"'))
    proj, line, inputs, files = config_of(repo_copy)
    version = json.loads(files["usr/local/share/runtime/version.json"])
    assert version["image"] == f"rt:{line.version}"
    assert json.loads(inputs["version.json"])["image"] == f"rt:{line.version}"


def test_a_fixture_project_has_no_airflow_policy(tmp_path):
    """The engine's only policy is BUILD's: a project with another runtime_image gets other
    names, user and folders (the fixture project of tests/fixtures.py)."""
    from tests.fixtures import make_project

    root = make_project(tmp_path / "fixture")
    proj = project.load(root)
    line = proj.lines["4.2"]
    assert config.flavors(proj, line) == ("main", "slim")
    cfg = config.image_config(proj, line, "slim")
    assert cfg["User"] == "app" and cfg["WorkingDir"] == "/home/app"
    assert cfg["Env"] == ["APP_VERSION=4.2.0"] and cfg["Labels"] == {}
    assert config.image_of(proj, line, "slim", [], []).tags == ["4.2.0-slim", "4.2-slim"]
    assert config.passwd_entry(proj, line) == "app:x:1000:1000:app:/home/app:/bin/bash\n"
