"""Write files and folders so that a failure never leaves a half-written output behind.

Each output is built under a temporary sibling name, `.<name>.tmp-<pid>-<random>`, and renamed into place
when complete. A process killed with SIGKILL cannot clean up, so the next write of the same output sweeps
the temporary siblings whose process is gone. Outputs get the usual modes under the user's umask (0644 files,
0755 folders), not the private 0600/0700 of mkstemp/mkdtemp.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `final`, on error it is removed."""
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), dir=prepared_parent(final)))
    tmp.chmod(0o777 & ~umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def atomic_write(final: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp_path) for a temporary sibling file, then rename it onto `final`."""
    fd, name = tempfile.mkstemp(prefix=temp_prefix(final), dir=prepared_parent(final))
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.chmod(0o666 & ~umask())
        write(tmp)
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(final: Path, data: Any) -> None:
    atomic_write(final, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_text(final: Path, text: str) -> None:
    atomic_write(final, lambda tmp: tmp.write_text(text))


def temp_prefix(final: Path) -> str:
    return f".{final.name}.tmp-{os.getpid()}-"


def prepared_parent(final: Path) -> Path:
    """final's folder, created if needed, without the leftovers of killed writers of `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(f".{final.name}.tmp-*"):
        pid = leftover.name.removeprefix(f".{final.name}.tmp-").split("-")[0]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    return final.parent


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@cache
def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
