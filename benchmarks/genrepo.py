"""Generate large git repositories fast, for benchmarks, with one `git fast-import` stream.

    python -m benchmarks.genrepo /tmp/big 100000     # a repo with 100,000 files on main, checked out
    python -m benchmarks.genrepo /tmp/big 20000 4000 # 20,000 files of 4,000 bytes (80 MB)

`generate(path, n_files)` writes `n_files` small text files (or, with `file_bytes`, files of
that size: 20,000 files of 4,000 bytes make the 80 MB repository of benchmarks/pool_claim.py)
spread over directories of at most `per_dir` files (as real trees are: git's cost depends on
the shape), commits them on `main` and checks them out. `add_branches(path, branches)` then
adds branches, each one commit on top of main changing given files, in a second fast-import
stream. Both are reusable by any benchmark; nothing here runs git-agents (`bench_env` is the
environment benchmarks run it in). `bench_dir` and `print_runs` are the benchmarks' shared set-up and
summary lines; `settle` waits for the disk before a timed run.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

IDENT = "Bench Mark <bench@example.com> 1700000000 +0000"


def file_path(i: int, per_dir: int = 250) -> str:
    """The path of generated file number `i`: two directory levels, `per_dir` files per directory."""
    d = i // per_dir
    return f"src/d{d // 64:03d}/m{d % 64:02d}/file{i:06d}.txt"


def file_content(i: int) -> str:
    """The initial content of generated file number `i` (a few lines, so line merges make sense)."""
    return f"file {i}\nline 2\nline 3\nline 4\nline 5\n"


def sized_content(i: int, size: int) -> str:
    """File number `i`'s initial content padded to `size` bytes with text that compresses about as
    badly as source code (hex of seeded random bytes: the same for the same `i`)."""
    head = file_content(i)
    pad = max(0, size - len(head) - 1)
    return head + random.Random(i).randbytes(pad // 2 + 1).hex()[:pad] + "\n"


def _blob(data: str) -> bytes:
    raw = data.encode()
    return b"data %d\n%s\n" % (len(raw), raw)


def _initial_stream(n_files: int, per_dir: int, file_bytes: int | None = None) -> Iterator[bytes]:
    yield b"commit refs/heads/main\n"
    yield f"author {IDENT}\ncommitter {IDENT}\n".encode()
    yield _blob("initial: generated tree")
    for i in range(n_files):
        content = (sized_content(i, file_bytes) if file_bytes else file_content(i)).encode()
        yield b"M 100644 inline %s\ndata %d\n%s\n" % (file_path(i, per_dir).encode(), len(content), content)
    yield b"\n"


def generate(path: str, n_files: int, *, per_dir: int = 250, checkout: bool = True,
             file_bytes: int | None = None) -> str:
    """Create a repository at `path` whose `main` holds `n_files` generated files (of about
    `file_bytes` bytes each, if given); return the commit."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    buf = bytearray()
    for chunk in _initial_stream(n_files, per_dir, file_bytes):
        buf += chunk
        if len(buf) > 1 << 20:
            proc.stdin.write(buf)
            buf.clear()
    proc.stdin.write(buf)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    if checkout:
        subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=path, check=True)
    return subprocess.run(["git", "rev-parse", "main"], cwd=path, check=True, capture_output=True,
                          text=True).stdout.strip()


def add_branches(path: str, branches: Mapping[str, Mapping[str, str]], *, base: str = "main") -> None:
    """Add branches, each one commit on `base` that sets the given files' contents ({branch: {path: text}})."""
    stream = bytearray()
    for mark, (branch, files) in enumerate(branches.items(), start=1):
        stream += f"commit refs/heads/{branch}\nmark :{mark}\n".encode()
        stream += f"author {IDENT}\ncommitter {IDENT}\n".encode()
        stream += _blob(f"{branch}: edit {len(files)} files")
        stream += f"from {base}^0\n".encode()
        for name, content in files.items():
            raw = content.encode()
            stream += b"M 100644 inline %s\ndata %d\n%s\n" % (name.encode(), len(raw), raw)
        stream += b"\n"
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=bytes(stream), check=True)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_env(home: str) -> dict[str, str]:
    """The environment to run git and git-agents in: bin/ first on PATH, HOME at `home`, no system
    configuration, a fixed identity, and Python's bytecode cache used (PYTHONDONTWRITEBYTECODE
    would compile every module of git-agents at every start, 100+ ms a command on a loaded machine:
    an installed package has its bytecode; see `warm_bytecode`)."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PATH": f"{os.path.join(ROOT, 'bin')}{os.pathsep}{os.environ['PATH']}",
            "GIT_CONFIG_NOSYSTEM": "1", "HOME": home, "GIT_AUTHOR_NAME": "Bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com"}


def warm_bytecode() -> None:
    """Compile git-agents' modules (into the checkout's ignored __pycache__ directories), as
    installing the package does, so that no timed run pays for compiling them."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "git_agents")], check=True,
                   stdout=subprocess.DEVNULL)


def _disk_counters(path: str) -> tuple[int, int] | None:
    """(discards completed, I/Os in flight) of the block device holding `path`, from
    /proc/diskstats (Linux 4.18+), or None where there is no such line."""
    dev = os.stat(path).st_dev
    try:
        with open("/proc/diskstats", encoding="ascii") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 18 and (int(fields[0]), int(fields[1])) == (os.major(dev), os.minor(dev)):
                    return int(fields[14]), int(fields[11])
    except OSError:
        pass
    return None


def settle(path: str, quiet: float = 1.0, limit: float = 60.0) -> float:
    """Write out dirty pages, then wait until the disk holding `path` has had no discard to do
    and nothing in flight for `quiet` seconds (at most `limit`); returns the seconds waited.

    On a file system mounted with `discard` (this machine's ext4), removing a tree makes the
    kernel send a discard per freed extent for seconds afterwards (measured: ~13,000 in 4 s after
    24 worktrees of 2,000 files), and a run timed then pays for the previous run's removal: the
    same `git worktree add` loop measured 2.1 s and 22.6 s in one benchmark. Each side of a
    benchmark waits the same way before it is timed.
    """
    os.sync()
    start = time.monotonic()
    last = _disk_counters(path)
    if last is None:
        return 0.0
    still = time.monotonic()
    while time.monotonic() - start < limit:
        time.sleep(0.2)
        now = _disk_counters(path)
        if now != last or (now is not None and now[1]):
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet:
            break
    return time.monotonic() - start


@contextmanager
def bench_dir(keep: str | bool | None, prefix: str) -> Iterator[str]:
    """The directory a benchmark works in: `keep` when it names one (left in place), else a temporary
    one, removed at the end unless `keep` is True (then its path is printed)."""
    path = keep if isinstance(keep, str) else tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        if keep is True:
            print(f"kept {path}")
        elif not keep:
            shutil.rmtree(path, ignore_errors=True)


def print_runs(label: str, times: Sequence[float], sizes: Sequence[int], width: int = 40) -> None:
    """One line of a benchmark's summary: the median time and disk of a way of doing something, and each run."""
    print(f"{label:<{width}} median {statistics.median(times):7.3f} s  {statistics.median(sizes) / 1e6:9.1f} MB"
          f" on disk  (runs: {' '.join(f'{t:.3f}' for t in times)})")


def main(argv: list[str]) -> int:
    """`python -m benchmarks.genrepo <path> <n-files> [<bytes-per-file>]`."""
    if len(argv) not in (2, 3) or not all(a.isdigit() for a in argv[1:]):
        sys.stderr.write("usage: python -m benchmarks.genrepo <path> <n-files> [<bytes-per-file>]\n")
        return 129
    print(generate(argv[0], int(argv[1]), file_bytes=int(argv[2]) if len(argv) == 3 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
