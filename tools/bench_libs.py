"""Our parsers against the maintained libraries, side by side: prints figures, asserts nothing.

    .venv/bin/python tools/bench_libs.py            # everything (the Debian part needs network)
    .venv/bin/python tools/bench_libs.py req patch  # only some parts: req, noop, debian, patch

req:    each lock under constraints/ read by rules/lock/requirements_file.py and by
        pip-requirements-parser (pip's own parser): milliseconds and whether they agree;
noop:   `invoke image --runtime 4.2`'s no-op rebuild (in-process, inputs fetched, action cache
        warm) as it is, and with every lock read by the library as well;
debian: the Debian lock resolved again (InRelease fetched and checked, indexes from the cache)
        with the hand-written deb822 and version code of BASE against python-debian's, and
        whether both write the committed lock; the main index's parse alone;
patch:  the project's backports applied to the locked upstream Airflow wheels by
        rules/python/patch_apply.py, whatthepatch and patch-ng (in a temporary folder): the
        time and whether the patched files are byte-identical; our patched wheel's sha256
        against the one the cache recorded.
"""

import importlib.util
import io
import lzma
import statistics
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from packaging.utils import canonicalize_name  # noqa: E402

from rules.common.cache import default_cache  # noqa: E402
from rules.load import project  # noqa: E402
from rules.lock import requirements_file  # noqa: E402

BASE = "c09454f"  # the last commit with the hand-written deb822 and Debian version code


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def timed(fn, *args, rounds=3, **kwargs):
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def old_module(path: str, name: str) -> types.ModuleType:
    """``path`` as it was at BASE, imported under ``name``."""
    source = subprocess.run(["git", "show", f"{BASE}:{path}"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{BASE}:{path}", "exec"), module.__dict__)
    return module


def with_pip_parser(text: str):
    from pip_requirements_parser import RequirementsFile

    # from_file: 32.0.1's from_string fails (NameError: Path is not imported); it writes a
    # temporary file too
    with tempfile.TemporaryDirectory(prefix="bench-libs-") as tmp:
        (Path(tmp) / "requirements.txt").write_text(text)
        parsed = RequirementsFile.from_file(str(Path(tmp) / "requirements.txt"))
    if parsed.invalid_lines:
        raise ValueError(parsed.invalid_lines[0].dumps())
    return parsed


def requirements():
    print("== requirements files: ours | pip-requirements-parser | agree")
    start = time.perf_counter()
    import pip_requirements_parser  # noqa: F401
    print(f"  import pip_requirements_parser: {ms(time.perf_counter() - start)}")
    total_ours = total_lib = 0.0
    for path in sorted((REPO / "constraints").glob("constraints-*.txt")):
        text = path.read_text()
        ours_t, (_, entries) = timed(requirements_file.parse, text, rounds=5)
        lib_t, parsed = timed(with_pip_parser, text, rounds=5)
        ours = {(e.name, e.version, tuple(sorted(e.hashes))) for e in entries}
        lib = {(canonicalize_name(r.name), str(r.specifier).removeprefix("=="),
                tuple(sorted(r.hash_options))) for r in parsed.requirements}
        total_ours, total_lib = total_ours + ours_t, total_lib + lib_t
        print(f"  {path.name:24} {len(entries):4} pins {ms(ours_t)} | {ms(lib_t)} | "
              f"{'yes' if ours == lib else 'NO: ' + str(sorted(ours ^ lib)[:3])}")
    print(f"  {'all':24} {'':9} {ms(total_ours)} | {ms(total_lib)} | "
          f"{total_lib / total_ours:.0f}x")


def noop():
    from rules.image import build as image

    print("== no-op rebuild of Runtime 4.2 (in-process): ours | ours + pip-requirements-parser")
    proj, cache = project.load(REPO), default_cache()
    ours = requirements_file.parse
    calls = []

    def both(text):
        calls.append(1)
        with_pip_parser(text)
        return ours(text)

    with tempfile.TemporaryDirectory(prefix="bench-libs-") as tmp:
        def build():
            return image.build(proj, "4.2", ("base",), Path(tmp) / "out", cache)
        try:
            build()  # warm (a real build if the action cache is cold)
        except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not fail
            print(f"  skipped: {e} (run `invoke fetch --runtime 4.2` and an image build first)")
            return
        rows = {"ours": [], "library": []}
        for _ in range(5):
            for label, parse in (("ours", ours), ("library", both)):
                requirements_file.parse = parse
                try:
                    rows[label].append(timed(build, rounds=1)[0])
                finally:
                    requirements_file.parse = ours
    print(f"  {statistics.median(rows['ours']):.2f} s | {statistics.median(rows['library']):.2f} s"
          f"  ({len(calls) // 5} lock reads per build; medians of 5)")


def debian():
    from debian import deb822

    from rules.debian import debian_index, debian_version
    from rules.lock import debian_lock

    print("== Debian: hand-written (BASE) | python-debian")
    old_index = old_module("rules/debian/debian_index.py", "old_debian_index")
    old_version = old_module("rules/debian/debian_version.py", "old_debian_version")
    proj = project.load(REPO)
    source = proj.debian
    mirror, suite = source.archives[0]
    release = deb822.Release(debian_index.verified_release(mirror, suite, source.keyring))
    wanted = f"{source.components[0]}/binary-{source.arch}/Packages.xz"
    digest = next(e["sha256"] for e in release["SHA256"] if e["name"] == wanted)
    blob = default_cache() / "cas" / "sha256" / digest[:2] / digest
    if blob.exists():
        text = lzma.decompress(blob.read_bytes()).decode()
        old_t, old_stanzas = timed(old_index.parse_stanzas, text, rounds=1)
        new_t, new_stanzas = timed(debian_index.parse_stanzas, text, rounds=1)
        fields_t, _ = timed(debian_index.parse_stanzas, text, debian_lock.FIELDS,
                           rounds=1)
        print(f"  parse {suite} {wanted} ({len(text) / 1e6:.0f} MB, {len(new_stanzas)} "
              f"paragraphs): {old_t:.2f} s | {new_t:.2f} s, {fields_t:.2f} s with the "
              f"{len(debian_lock.FIELDS)} fields the lock reads")
        versions = [s["Version"] for s in old_stanzas]
        old_t, old_sorted = timed(sorted, versions, key=old_version.sort_key, rounds=1)
        new_t, new_sorted = timed(sorted, versions, key=debian_version.sort_key, rounds=1)
        print(f"  sort its {len(versions)} versions: {old_t:.2f} s | {new_t:.2f} s, same order: "
              f"{old_sorted == new_sorted}")
    else:
        print(f"  {wanted} of {suite} is not cached; the parse figures are skipped")

    intact = debian_lock.packages_intact
    results = {}
    debian_lock.packages_intact = lambda document: False  # resolve again, whatever the lock
    try:
        old_packages = types.SimpleNamespace(  # BASE's packages() takes no fields
            packages=lambda *args: old_index.packages(*args[:6]))
        for label, index, version in (("old", old_packages, old_version),
                                      ("new", debian_index, debian_version)):
            debian_lock.debian_index, debian_lock.debian_version = index, version
            results[label] = timed(debian_lock.prepare, proj, rounds=1)
    finally:
        debian_lock.packages_intact = intact
        debian_lock.debian_index, debian_lock.debian_version = debian_index, debian_version
    (old_t, old), (new_t, new) = results["old"], results["new"]
    print(f"  Debian lock resolved again (3 InRelease downloads included): {old_t:.2f} s | "
          f"{new_t:.2f} s; committed lock written again: {old.action} | {new.action}; "
          f"same output: {old.files == new.files}")


def apply_ours(text: str, files: dict) -> dict:
    from rules.python import patch_apply

    _, changes = patch_apply.parse(text)
    return {c.path: patch_apply.apply(files, c) for c in changes}


def apply_whatthepatch(text: str, files: dict) -> dict:
    import whatthepatch

    out = {}
    for diff in whatthepatch.parse_patch(text):
        name = diff.header.new_path.removeprefix("b/")
        lines = whatthepatch.apply_diff(diff, files[name].decode())
        out[name] = ("\n".join(lines) + "\n").encode()  # it returns lines, no line ends
    return out


def apply_patch_ng(text: str, files: dict) -> dict:
    import patch_ng

    with tempfile.TemporaryDirectory(prefix="bench-libs-") as tmp:  # it patches files on disk
        patchset = patch_ng.fromstring(text.encode())
        names = [p.target.decode().removeprefix("b/") for p in patchset.items]
        for name in names:
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(files[name])
        if not patchset.apply(strip=1, root=tmp):
            raise RuntimeError("patch-ng: the patch did not apply")
        return {name: (Path(tmp) / name).read_bytes() for name in names}


def patches():
    import hashlib
    import json
    import logging

    from rules.python import patched_wheel
    from tests.fixtures import upstream_airflow_wheel

    logging.getLogger("patch_ng").setLevel(logging.CRITICAL)
    print("== backports on the upstream wheels: ours | whatthepatch | patch-ng "
          "(identical to ours?)")
    proj = project.load(REPO)
    for airflow, patchset in sorted(proj.patches.items()):
        blob, filename = upstream_airflow_wheel(proj, airflow)
        with zipfile.ZipFile(io.BytesIO(blob.read_bytes())) as zf:
            files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        for path in patchset.patches:
            text = (REPO / path).read_text()

            ours_t, want = timed(apply_ours, text, files, rounds=5)
            row = [f"{ms(ours_t)}"]
            for fn in (apply_whatthepatch, apply_patch_ng):
                try:
                    t, got = timed(fn, text, files, rounds=5)
                    row.append(f"{ms(t)} ({'yes' if got == want else 'NO'})")
                except Exception as e:  # noqa: BLE001
                    row.append(f"fails: {type(e).__name__}: {str(e)[:60]}")
            print(f"  {Path(path).name}: " + " | ".join(row))
        with tempfile.TemporaryDirectory(prefix="bench-libs-") as tmp:
            sha = hashlib.sha256(blob.read_bytes()).hexdigest()
            _, name, digest = patched_wheel.patched(proj, patchset, blob, filename, sha, Path(tmp))
            record = next((Path(tmp) / "patched-wheels").glob("*.json")).name
            cached = default_cache() / "patched-wheels" / record
            recorded = json.loads(cached.read_text())["sha256"] \
                if cached.exists() else "(not in the cache)"
            print(f"  {name}: sha256 {digest[:16]}…, cache record {recorded[:16]}…, "
                  f"same: {digest == recorded}")


def main():
    parts = sys.argv[1:] or ["req", "noop", "debian", "patch"]
    for part in parts:
        {"req": requirements, "noop": noop, "debian": debian, "patch": patches}[part]()


if __name__ == "__main__":
    main()
