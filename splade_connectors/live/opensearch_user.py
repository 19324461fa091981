"""Running OpenSearch as root's stand-in: it refuses to run as root (2.x has no override).

When the caller is root (CI containers), the JVM runs as the system user ``splade-opensearch`` (override
with ``SPLADE_CONNECTORS_OPENSEARCH_USER``), created with ``useradd`` on first use, via ``setpriv``
(fallback ``runuser``). Because the cache usually lives under ``/root`` (mode 700), the distribution is
hard-linked (or copied) into the run folder for that user; only the run's config/data/logs/tmp are chowned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from splade_connectors.errors import ServerError

log = logging.getLogger(__name__)

DEFAULT_RUN_AS_USER = "splade-opensearch"
USER_ENV = "SPLADE_CONNECTORS_OPENSEARCH_USER"


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating a system user if needed."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ServerError(f"useradd {name} failed: {exc}") from exc
    if result.returncode not in (0, 9):  # 9: already exists (race with another process)
        raise ServerError(f"useradd {name} failed: {result.stderr.strip()}")
    log.info("created system user %s to run OpenSearch (it refuses to run as root)", name)
    return pwd.getpwnam(name)


def run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the JVM as, or None when not root."""
    if os.geteuid() != 0:
        return None
    return _ensure_system_user(os.environ.get(USER_ENV, DEFAULT_RUN_AS_USER))


def launch_prefix(user: pwd.struct_passwd | None, tie_to_parent: bool) -> list[str]:
    """Command prefix that drops root and/or ties the JVM's life to this thread.

    ``setpriv --pdeathsig`` rather than a pre-exec ``prctl``: the kernel clears the parent-death signal
    when the credentials change, so it must be set after dropping root.
    """
    setpriv = shutil.which("setpriv")
    if setpriv:
        prefix = [setpriv]
        if user is not None:
            prefix += [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        if tie_to_parent:
            prefix.append("--pdeathsig=TERM")
        return [*prefix, "--"] if len(prefix) > 1 else []
    if user is None:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user.pw_name, "--"]
    raise ServerError("running as root needs setpriv or runuser (util-linux) to drop privileges")


def chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    """Recursively chown ``root`` to ``user``."""
    os.chown(root, user.pw_uid, user.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath) / name, user.pw_uid, user.pw_gid, follow_symlinks=False)


def link_tree(src: Path, dest: Path) -> None:
    """Hard-link a tree (copy when linking is impossible, e.g. across filesystems)."""
    try:
        shutil.copytree(src, dest, copy_function=os.link)
    except (OSError, shutil.Error):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest)
