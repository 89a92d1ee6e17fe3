"""Loading the real project, and what a bad BUILD or WORKSPACE file says."""

import shutil

import pytest

from rules.load import project
from rules.common.errors import BuildFileError, UserError
from tests.fixtures import REPO

# The lines of the mission and their Airflow (a release may add lines, never change these).
LINES = {"3.0": "2.1.1", "4.0": "2.2.0", "4.1": "2.2.4", "4.2": "2.2.4", "5.0": "2.3.0"}


def known_lines() -> str:
    return ", ".join(project.load(REPO).lines)


def test_real_project_declares_the_lines_of_the_mission():
    from rules.release import support

    proj = project.load(REPO)
    assert {name: proj.lines[name].airflow for name in LINES if name in proj.lines} == LINES
    for line in proj.lines.values():
        assert line.python == "3.9" and line.debian == "bullseye"
        assert line.version.startswith(line.name + ".")
        assert line.source_date_epoch > 0 and line.pypi_cutoff
        assert set(line.modules) == {"//runtime:runtime", "//providers:providers",
                                     "//security:security", "//logging:logging", "//ui:ui"}
    policy = support.load(REPO)
    assert [n for n, ln in proj.lines.items() if ln.lts] == \
        [n for n in proj.lines if policy[n].lts]
    assert "4.2" in policy and policy["4.2"].lts
    assert set(proj.locks) == {line.airflow for line in proj.lines.values()}


def test_provider_sets_follow_the_lines():
    proj = project.load(REPO)
    extras = {"amazon", "celery", "cncf.kubernetes", "elasticsearch", "google", "password",
              "postgres", "redis", "statsd", "virtualenv"}
    for name, line in proj.lines.items():
        pset = proj.provider_sets[line.providers]
        assert set(pset.airflow_extras) - {"databricks", "snowflake"} == extras
        assert "openlineage-airflow" in pset.packages
        assert "pytest" in pset.tools  # the Astro CLI's `astro dev pytest`
        assert ("astronomer-providers" in pset.packages) == (line.airflow != "2.1.1"), name


def test_every_module_folder_has_a_build_file_and_no_stdlib_shadow():
    import sys

    for folder in ("runtime", "providers", "security", "logging", "ui"):
        assert (REPO / folder / "BUILD").is_file()
    for child in REPO.iterdir():
        if (child / "__init__.py").exists() or child.suffix == ".py":
            assert child.stem not in sys.stdlib_module_names, child
    proj = project.load(REPO)
    assert proj.modules["//logging:logging"].import_name == "runtime_logging"


@pytest.fixture
def repo_copy(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    return dst


def edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_unknown_field_names_target_and_field(repo_copy):
    edit(repo_copy / "BUILD", '    name = "4.2",', '    name = "4.2",\n    pyhton = "3.9",')
    with pytest.raises(BuildFileError) as err:
        project.load(repo_copy)
    assert 'runtime_line "4.2": unknown field \'pyhton\'' in str(err.value)
    assert str(err.value).startswith("BUILD:")


def test_missing_field_names_target_and_field(repo_copy):
    edit(repo_copy / "BUILD", '    airflow = "2.3.0",\n', "")
    with pytest.raises(BuildFileError, match="runtime_line \"5.0\": missing field 'airflow'"):
        project.load(repo_copy)


def test_wrong_type_names_the_field(repo_copy):
    edit(repo_copy / "WORKSPACE", 'arch = "amd64"', "arch = 64")
    with pytest.raises(BuildFileError, match=r"^WORKSPACE:\d+:1: debian_source \"bullseye\": "
                                             r"field 'arch': expected a string"):
        project.load(repo_copy)


def test_astronomer_providers_refused_on_airflow_2_1(repo_copy):
    edit(repo_copy / "BUILD", 'providers = "//providers:airflow-2.1"',
         'providers = "//providers:airflow-2.2"')
    with pytest.raises(UserError, match=r'runtime_line "3.0": field \'providers\': '
                                        r"//providers:airflow-2.2 needs apache-airflow>=2.2"):
        project.load(repo_copy)


def test_unknown_label_lists_known_ones(repo_copy):
    edit(repo_copy / "BUILD", '"//ui:ui",', '"//ui:uii",')
    with pytest.raises(UserError, match=r"field 'modules': no runtime_module //ui:uii \(known: "):
        project.load(repo_copy)


def test_lines_sharing_a_lock_must_share_the_cutoff(repo_copy):
    text = (repo_copy / "BUILD").read_text()
    start = text.index('name = "4.2"')
    patched = text[:start] + text[start:].replace('"2022-03-02"', '"2022-03-09"', 1)
    (repo_copy / "BUILD").write_text(patched)
    with pytest.raises(UserError, match="field 'pypi_cutoff' differs from line \"4.1\""):
        project.load(repo_copy)


def test_stdlib_import_name_refused(repo_copy):
    edit(repo_copy / "logging" / "BUILD", 'import_name = "runtime_logging"',
         'import_name = "logging"')
    with pytest.raises(BuildFileError, match="would shadow the standard library"):
        project.load(repo_copy)


def test_unknown_line_lists_known_lines():
    with pytest.raises(UserError) as err:
        project.load(REPO).line("9.9")
    assert str(err.value) == f"unknown runtime line '9.9'; known lines: {known_lines()}"


def test_the_ui_module_registers_its_airflow_plugin(repo_copy):
    assert project.load(REPO).modules["//ui:ui"].airflow_plugin == \
        "runtime_ui.plugin:RuntimeUIPlugin"
    edit(repo_copy / "ui" / "BUILD", '"runtime_ui.plugin:RuntimeUIPlugin"', '"runtime_ui.plugin"')
    with pytest.raises(BuildFileError, match="'runtime_ui.plugin' is not 'package.module:Class'"):
        project.load(repo_copy)


def test_module_env_and_airflow_home_files(repo_copy):
    security = project.load(REPO).modules["//security:security"]
    assert dict(security.env)["AIRFLOW__API__AUTH_BACKEND"] == "runtime_security.api_auth"
    assert security.airflow_home == (("webserver_config.py", "security/webserver_config.py"),)
    edit(repo_copy / "security" / "BUILD", '"AIRFLOW__API__AUTH_BACKEND"', '"lower-case"')
    with pytest.raises(BuildFileError, match="'lower-case' is not an environment variable name"):
        project.load(repo_copy)
