"""The state-dir lock as a unit: exclusive, names its holder, released on close."""

from __future__ import annotations

import pytest

from reactor.store.state_dir import StateDirError, StateLock, prepare_state_dir


def test_second_lock_is_refused_naming_the_holder_and_released_on_close(tmp_path) -> None:
    first = StateLock(tmp_path, started=0.0)
    first.acquire()
    second = StateLock(tmp_path)
    with pytest.raises(StateDirError) as err:
        second.acquire()
    assert "since 1970-01-01T00:00:00Z" in str(err.value) and "pid" in str(err.value)
    assert not second.held
    first.release()
    with second:  # free again (a SIGKILLed holder's lock is released by the kernel likewise)
        assert second.held
    assert (tmp_path / "reactor.lock").exists()


def test_prepare_state_dir_creates_and_refuses(tmp_path) -> None:
    prepare_state_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("")
    with pytest.raises(StateDirError, match="not a directory"):
        prepare_state_dir(tmp_path / "f")
    with pytest.raises(StateDirError, match="cannot be created"):
        prepare_state_dir(tmp_path / "f" / "sub")
