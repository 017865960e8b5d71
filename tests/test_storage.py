"""Durable writes: the final file is whole, and readable as a plain open() would make it."""

import os
import stat

from skyrack.storage import atomic_write_bytes, atomic_write_text


def test_an_atomic_write_honours_the_umask_not_the_temp_files_privacy(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
        atomic_write_bytes(tmp_path / "secret", b"s3cret", mode=0o600)
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert (tmp_path / "report.html").read_text() == "<html></html>"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
