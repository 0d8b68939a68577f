"""Shared helpers of the bad-input / fault tests (test_bad_*.py, test_saving.py, ...)."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import zlib


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """``siamgui ARGV`` in this process: (exit code, stdout, stderr)."""
    from siamgui.cli import main

    capsys.readouterr()
    code = main([os.fspath(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*argv, timeout: float = 120, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``python -m siamgui ARGV`` in a fresh process, as a user runs it."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "siamgui", *map(os.fspath, argv)], capture_output=True,
                          text=True, errors="surrogateescape", timeout=timeout, env=full_env, cwd=cwd)


def assert_one_line_error(code: int, err: str, expect: str | None = None) -> str:
    """Exit code 2, exactly one non-empty stderr line, no traceback; returns that line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("siamgui: error: "), err
    if expect is not None:
        assert expect.lower() in lines[0].lower(), lines[0]
    return lines[0]


def tree(root) -> dict[str, int]:
    """Every file and folder below ``root`` (relative path -> size, -1 for folders)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = -1
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = os.lstat(p).st_size
    return out


def png_claiming(w: int, h: int) -> bytes:
    """A valid-looking PNG header claiming w x h pixels, with almost no data (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


@contextlib.contextmanager
def tmpfs(path, options):
    """Mount a tmpfs at ``path`` for the block; skip the test where mounting is not allowed."""
    import pytest

    path.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path, options: str) -> None:
    """Change a tmpfs mounted by :func:`tmpfs` (e.g. ``"ro"`` or ``"rw"``) while files on it are open."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)
