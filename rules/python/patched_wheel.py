"""The image's Airflow: the hash-pinned upstream wheel with the line's backports applied.

The patches of an ``airflow_patches`` target are applied in order to the wheel's files, the
distribution is renamed to the PEP 440 local version ``AIRFLOW+runtime.N`` (dist-info folder,
METADATA, RECORD regenerated) and the wheel is written again reproducibly: entries in the
upstream order with the dist-info last, fixed timestamps and modes, fixed compression. The
result is cached in the CAS by the digest of everything that goes into it.
"""

import base64
import hashlib
import io
import re
import zipfile
from pathlib import Path

from rules.common import atomic
from rules.graph.action import Action, Made
from rules.fetch import download
from rules.python import patch_apply
from rules.common.errors import UserError
from rules.load.model import AirflowPatches, Project

RECIPE = 1
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
UPSTREAM_REF = re.compile(r"(apache/airflow#\d+|github\.com/apache/airflow/(pull|issues)/\d+)")


def check_header(path: str, header: str) -> None:
    """A backport names what it backports: an upstream issue or pull request."""
    if not UPSTREAM_REF.search(header):
        raise UserError(f"{path}: the patch header must cite the upstream fix "
                        "(apache/airflow#NUMBER or a github.com/apache/airflow/pull/NUMBER link)")


def action(project: Project, patchset: AirflowPatches, filename: str, sha256: str) -> Action:
    """The action that makes the patched wheel from the locked one (``filename``, ``sha256``,
    in the content-addressed store): keyed by the wheel, the local version and each patch."""
    root = Path(project.root)
    texts = [(p, (root / p).read_bytes()) for p in patchset.patches]

    def run(ctx) -> Made:
        wheel = download.cas_path(ctx.cache, sha256)
        name, data = repack(wheel.read_bytes(), filename, patchset.version, texts)
        digest = hashlib.sha256(data).hexdigest()
        blob = download.cas_path(ctx.cache, digest)
        if not blob.exists():
            atomic.write_bytes(blob, data)
        return Made(blobs={"wheel": (digest, len(data))}, values={"filename": name})

    inputs = {"wheel": sha256, "version": patchset.version, "recipe": str(RECIPE)}
    inputs.update({p: hashlib.sha256(t).hexdigest() for p, t in texts})
    return Action("patched wheel", f"{filename} + {len(texts)} patches", inputs, run)


def repack(wheel: bytes, filename: str, version: str,
           patches: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """(new filename, bytes) of ``wheel`` with ``patches`` applied, as ``version``."""
    dist, old_version, rest = filename.split("-", 2)
    old_info, new_info = f"{dist}-{old_version}.dist-info", f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(io.BytesIO(wheel)) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        files = {i.filename: zf.read(i) for i in infos}
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
    for path, text in patches:
        try:
            header, changes = patch_apply.parse(text.decode("utf-8"))
        except (patch_apply.PatchError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a unified diff: {e}") from None
        check_header(path, header)
        for change in changes:
            try:
                new = patch_apply.apply(files, change)
            except patch_apply.PatchError as e:
                raise UserError(f"{path} does not apply to {filename}: {e}") from None
            if change.old_path and change.old_path != change.path:
                files.pop(change.old_path)
            if new is None:
                files.pop(change.path)
            else:
                files[change.path] = new
                modes.setdefault(change.path, 0o644)
    metadata = files[f"{old_info}/METADATA"].decode("utf-8")
    metadata, count = re.subn(r"^Version: .*$", f"Version: {version}", metadata, count=1,
                              flags=re.M)
    if not count:
        raise UserError(f"{filename}: METADATA has no Version field")
    files[f"{old_info}/METADATA"] = metadata.encode("utf-8")
    renamed = {(new_info + n[len(old_info):] if n.startswith(old_info + "/") else n): data
               for n, data in files.items()}
    modes = {(new_info + n[len(old_info):] if n.startswith(old_info + "/") else n): m
             for n, m in modes.items()}
    record = f"{new_info}/RECORD"
    order = [n for n in renamed if not n.startswith(new_info + "/")] + \
        sorted(n for n in renamed if n.startswith(new_info + "/") and n != record)
    rows = [f"{n},sha256={_b64(hashlib.sha256(renamed[n]).digest())},{len(renamed[n])}"
            for n in order]
    renamed[record] = ("\n".join(rows + [f"{record},,"]) + "\n").encode("utf-8")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in order + [record]:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100000 | (modes.get(name) or 0o644)) << 16
            info.create_system = 3
            zf.writestr(info, renamed[name], compresslevel=6)
    return f"{dist}-{version}-{rest}", out.getvalue()


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
