"""The Debian root of another architecture (arm64), made on the build's own without running
any of its code.

The root is rules.debian.extract_root's, from that architecture's lock (beside the main one:
rules.lock.debian_lock ``packages_for``): the .debs unpacked, dpkg's database written, the
maintainer scripts' work done by hand, and the standard library byte-compiled by the build's own
python3.9 chrooted into the root with the libraries of ``host_root`` (the main lock's root, an
action of the same graph) bound over it. So the foreign root waits for the host root, and is
cached as a tree like it (kind "debian root", labelled with its architecture), keyed by every
.deb's sha256, the extraction recipe, the clamp, the sources and the host root's key.

Why not mmdebstrap for arm64: its maintainer scripts are arm64 code, which runs only under
emulation (binfmt handlers, which this build never registers).
"""

from pathlib import Path

from rules.common import scratch
from rules.debian import debian_rootfs, extract_root
from rules.graph import action_cache
from rules.graph.action import Action, Made, digest
from rules.load.model import Project
from rules.lock import debian_lock


def action(project: Project, arch: str, epoch: int, host_root: Action) -> Action:
    """The action making the ``arch`` root as a tree of the cache (with the FACTS values the
    base and config layers read, like the host root's record)."""
    packages = debian_lock.packages_for(project, arch)
    sources = debian_rootfs.sources_list(project)
    inputs = {f"deb {p['name']}": p["sha256"] for p in packages}
    inputs.update({
        "recipe": extract_root.recipe_digest(), "builder": "extract", "arch": arch,
        "epoch": str(epoch), "archives": digest([list(a) for a in project.debian.archives]),
        "sources.list": sources, f"{host_root.kind}: {host_root.label}": host_root.key})

    def run(ctx) -> Made:
        done = action_cache.tree_path(ctx.cache, "debian root", made.key)
        if not done.is_dir():  # the rename in publish() is the commit: a folder there is whole
            compiler = ctx.dep(host_root).tree(ctx.cache, "root")
            with scratch.folder(ctx.cache, "rootfs") as work:
                target = Path(work) / "root"
                target.mkdir()
                extract_root.make(packages, ctx.cache, target, arch, epoch, sources,
                                  compiler_root=compiler)
                debian_rootfs.check_versions(target, packages)
                debian_rootfs.publish(target, done)
        return Made(trees={"root": done.relative_to(ctx.cache).as_posix()},
                    values=debian_rootfs.facts(done))

    made = Action("debian root", f"{project.debian.name} {arch}", inputs, run,
                  deps=(host_root,), urgent=True)
    return made
