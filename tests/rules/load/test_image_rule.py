"""The `runtime_image` rule (runtime/BUILD) and the provider_set fields of the providers
layer: what a bad attribute says, with the file, line and column of the call."""

import shutil

import pytest

from rules.common.errors import BuildFileError, UserError
from rules.load import project
from tests.fixtures import REPO


@pytest.fixture
def repo_copy(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__",
                                                             "out"))
    return dst


def edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_every_line_follows_the_declared_image_policy():
    proj = project.load(REPO)
    image = proj.images["//runtime:image"]
    assert {line.image for line in proj.lines.values()} == {"//runtime:image"}
    assert (image.user, image.uid, image.gid, image.home) == \
        ("astro", 50000, 0, "/usr/local/airflow")
    assert [f.name for f in image.flavors] == ["onbuild", "base"]
    assert image.flavor("base").onbuild == () and image.flavor("onbuild").onbuild
    assert dict(image.env)["PIP_CONSTRAINT"] == "{data_dir}/constraints.txt"


# (edit in runtime/BUILD, the error's text after `runtime/BUILD:LINE:COL: `)
BAD_IMAGE = [
    ('    uid = 50000,', '    uid = 50000,\n    usr = "astro",',
     "runtime_image \"image\": unknown field 'usr' (fields: "),
    ('    uid = 50000,', '    uid = "50000",',
     "runtime_image \"image\": field 'uid': expected an integer, got str '50000'"),
    ('    uid = 50000,', '    uid = -1,',
     "runtime_image \"image\": field 'uid': expected 0..2147483647, got -1"),
    ('    gid = 0,', '    gid = True,',
     "runtime_image \"image\": field 'gid': expected an integer, got a bool"),
    ('    user = "astro",', '    user = "Astro User",',
     "field 'user': 'Astro User' is not a user name"),
    ('    home = "/usr/local/airflow",', '    home = "usr/local/airflow",',
     "field 'home': expected an absolute path without . or .., got 'usr/local/airflow'"),
    ('    home_mode = 0o775,', '    home_mode = 0o17777,',
     "field 'home_mode': expected a mode from 0o0 to 0o7777, got 0o17777"),
    ('    home_dirs = ["logs"],', '    home_dirs = ["../logs"],',
     "field 'home_dirs': expected a relative path below home, got '../logs'"),
    ('"RUNTIME_VERSION": "{version}",', '"RUNTIME_VERSION": "{verison}",',
     "field 'env': '{verison}': unknown template field {verison} (fields: {version}, "),
    ('"RUNTIME_VERSION": "{version}",', '"runtime-version": "{version}",',
     "field 'env': 'runtime-version' is not an environment variable name"),
    ('"PYTHONUNBUFFERED": "1",', '"PYTHONUNBUFFERED": 1,',
     "field 'env': expected a dict of strings to strings"),
    ('exposed_ports = ["8080/tcp"],', 'exposed_ports = ["8080"],',
     "field 'exposed_ports': expected 'PORT/tcp' or 'PORT/udp', got '8080'"),
    ('tag = "{version}{tag_suffix}",', 'tag = "{version}{tag_suffix",',
     "field 'tag': '{version}{tag_suffix' is not a template"),
    ('tag = "{version}{tag_suffix}",', 'tag = "{version}-{airflow_version}",',
     "field 'tag': '{version}-{airflow_version}': unknown template field {airflow_version}"),
    ('floating_tags = ["{major_minor}{tag_suffix}"],', 'floating_tags = "{major_minor}",',
     "field 'floating_tags': expected a list of strings, got str '{major_minor}'"),
    ('"base": {"tag_suffix": "-base"},', '"base": {"tag_sufix": "-base"},',
     "field 'flavors': flavor 'base': unknown key 'tag_sufix' (keys: onbuild, tag_suffix)"),
    ('"base": {"tag_suffix": "-base"},', '"base": {"tag_suffix": ""},',
     "field 'flavors': two flavors get the same tag (onbuild: 1.2.3, base: 1.2.3)"),
    ('"base": {"tag_suffix": "-base"},', '"base": {"tag_suffix": "-base", "onbuild": "RUN x"},',
     "field 'flavors': flavor 'base': key 'onbuild': expected a list of strings, got str"),
    ('"base": {"tag_suffix": "-base"},', '"base": {"tag_suffix": "/base"},',
     "field 'flavors': flavor 'base': key 'tag_suffix': '/base' has characters a tag cannot"),
    ('"USER {user}",', '"USER {usr}",',
     "field 'flavors': flavor 'onbuild': key 'onbuild': 'USER {usr}': unknown template field"),
    ('"org.opencontainers.image.version": "{version}",\n        "org.opencontainers.image.title"',
     '"org.opencontainers.image.revision": "x",\n        "org.opencontainers.image.title"',
     "field 'annotations': org.opencontainers.image.revision is set by the build"),
    ('    repository = "runtime",', '    repository = "Runtime",',
     "field 'repository': 'Runtime' is not an image repository name"),
    ('    data_dir = "/usr/local/share/runtime",\n', '',
     "runtime_image \"image\": missing field 'data_dir'"),
]


@pytest.mark.parametrize("old,new,message", BAD_IMAGE,
                         ids=[m.split(": ", 1)[-1][:40] for _, _, m in BAD_IMAGE])
def test_a_bad_image_attribute_names_file_line_column_and_field(repo_copy, old, new, message):
    edit(repo_copy / "runtime" / "BUILD", old, new)
    with pytest.raises(BuildFileError) as err:
        project.load(repo_copy)
    text = str(err.value)
    assert text.startswith("runtime/BUILD:"), text
    location, _, rest = text.partition(": ")
    _, line, col = location.split(":")
    assert int(line) > 1 and int(col) >= 1, text
    assert message in rest, (message, text)


def test_the_error_points_at_the_runtime_image_call(repo_copy):
    build = repo_copy / "runtime" / "BUILD"
    edit(build, "    uid = 50000,", "    uid = -1,")
    call = build.read_text().splitlines().index("runtime_image(") + 1
    with pytest.raises(BuildFileError, match=rf"^runtime/BUILD:{call}:1: runtime_image"):
        project.load(repo_copy)


def test_a_line_names_an_image_that_exists(repo_copy):
    edit(repo_copy / "BUILD", '    image = "//runtime:image",', '    image = "//runtime:img",')
    with pytest.raises(UserError, match=r'runtime_line "3.0": field \'image\': no runtime_image '
                                        r"//runtime:img \(known: //runtime:image\)"):
        project.load(repo_copy)


def test_a_line_needs_an_image(repo_copy):
    edit(repo_copy / "BUILD", '    image = "//runtime:image",\n', "")
    with pytest.raises(BuildFileError, match=r"^BUILD:\d+:1: runtime_line \"3.0\": missing "
                                             r"field 'image'"):
        project.load(repo_copy)


def test_a_plugin_module_needs_the_plugin_group(repo_copy):
    edit(repo_copy / "runtime" / "BUILD", '    plugin_group = "airflow.plugins",\n', "")
    with pytest.raises(UserError, match="registers a plugin, but //runtime:image has no "
                                        "plugin_group"):
        project.load(repo_copy)


@pytest.mark.parametrize("old,new,message", [
    ("    tools = TOOLS,\n    layer_includes = PREINSTALLED_2_1",
     '    tools = TOOLS + ["openlineage-airflow"],\n    layer_includes = PREINSTALLED_2_1',
     "field 'tools': openlineage-airflow is also a provider"),
    ('EXTRA_PROVIDER = "apache-airflow-providers-{extra}"',
     'EXTRA_PROVIDER = "apache-airflow-providers-"', "does not name {extra}"),
    ('OPENLINEAGE_PARTS = ["openlineage-integration-common",',
     'OPENLINEAGE_PARTS = ["openlineage integration",',
     "field 'layer_includes': 'openlineage integration' is not a distribution name"),
    ("    tools = TOOLS,\n    layer_includes = PREINSTALLED_2_1",
     '    tools = ["pytest>>1"],\n    layer_includes = PREINSTALLED_2_1',
     "field 'tools': invalid requirement 'pytest>>1'"),
])
def test_a_bad_provider_set_field_is_located(repo_copy, old, new, message):
    edit(repo_copy / "providers" / "BUILD", old, new)
    with pytest.raises(BuildFileError, match=r"^providers/BUILD:\d+:\d+: provider_set ") as err:
        project.load(repo_copy)
    assert message in str(err.value)
