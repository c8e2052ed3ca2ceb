"""Old charts are deleted, recent ones and other files kept."""

from __future__ import annotations

import os
import time

from bot.housekeeping import delete_old_files


def test_deletes_only_old_pngs(tmp_path):
    old = tmp_path / "alerts" / "SPY_old.png"
    new = tmp_path / "SPY_new.png"
    other = tmp_path / "notes.txt"
    old.parent.mkdir()
    for p in (old, new, other):
        p.write_bytes(b"x")
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    os.utime(other, (week_ago, week_ago))
    assert delete_old_files(tmp_path, 7) == 1
    assert not old.exists() and new.exists() and other.exists()
    assert delete_old_files(tmp_path / "missing", 7) == 0
