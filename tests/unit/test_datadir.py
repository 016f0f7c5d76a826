"""check_replaceable: which directories pgstream agrees to empty for a new standby."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgstream.errors import PgStreamError, UnsafeDataDirectory
from pgstream.hosts.datadir import check_replaceable, inspect, wipe_contents


def make_data_dir(path: Path, version: str = "15") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "PG_VERSION").write_text(f"{version}\n")
    (path / "base").mkdir()
    (path / "postgresql.conf").write_text("port = 5432\n")
    return path


def test_unsafe_data_directory_is_a_pgstream_error() -> None:
    assert issubclass(UnsafeDataDirectory, PgStreamError)


def test_empty_directory_is_fine(tmp_path: Path) -> None:
    target = tmp_path / "standby"
    target.mkdir()
    state = check_replaceable(target, replace=False)
    assert state.exists
    assert state.empty
    assert not state.is_data_dir
    assert state.running_pid is None


def test_missing_directory_with_existing_parent_is_fine(tmp_path: Path) -> None:
    state = check_replaceable(tmp_path / "new", replace=False)
    assert not state.exists
    assert state.empty


def test_missing_parent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeDataDirectory, match="parent"):
        check_replaceable(tmp_path / "no" / "such" / "dir", replace=True)


def test_non_empty_non_data_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"\xff\xd8")
    for replace in (False, True):
        with pytest.raises(UnsafeDataDirectory, match="PG_VERSION"):
            check_replaceable(target, replace=replace)
    assert (target / "holiday.jpg").exists()


def test_hidden_file_makes_a_directory_non_empty(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / ".keep").write_text("")
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(target, replace=True)


def test_data_directory_needs_replace(tmp_path: Path) -> None:
    target = make_data_dir(tmp_path / "old_standby", "12")
    with pytest.raises(UnsafeDataDirectory, match="replace=True") as info:
        check_replaceable(target, replace=False)
    assert "12" in str(info.value)
    state = check_replaceable(target, replace=True)
    assert state.is_data_dir
    assert state.version == "12"
    assert not state.empty


def test_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UnsafeDataDirectory, match="not a directory"):
        check_replaceable(target, replace=True)


@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/var/lib/postgresql", "/home", "/tmp",
                                  "/usr/local", "/root", "//", "/etc/..", "/usr/../"])
def test_system_directories_are_refused(path: str) -> None:
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(Path(path), replace=True, allow_running=True)


def test_home_directory_is_refused() -> None:
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(Path.home(), replace=True)
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(Path(os.path.expanduser("~")), replace=True)


def test_home_directory_of_another_user_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(UnsafeDataDirectory, match="home"):
        check_replaceable(home, replace=True)


@pytest.mark.parametrize("path", ["data", "./data", "../data", "standby/data", ""])
def test_relative_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafeDataDirectory, match="absolute"):
        check_replaceable(Path(path), replace=True)


def test_protected_directory_itself_is_refused(tmp_path: Path) -> None:
    primary = make_data_dir(tmp_path / "primary")
    with pytest.raises(UnsafeDataDirectory, match="primary"):
        check_replaceable(primary, replace=True, protected=[primary])


def test_path_inside_protected_is_refused(tmp_path: Path) -> None:
    primary = make_data_dir(tmp_path / "primary")
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(primary / "base", replace=True, protected=[primary])
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(primary / "new_standby", replace=True, protected=[primary])


def test_path_containing_protected_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "clusters"
    primary = make_data_dir(parent / "primary")
    with pytest.raises(UnsafeDataDirectory, match="contains"):
        check_replaceable(parent, replace=True, protected=[primary])


def test_protected_is_compared_after_resolving(tmp_path: Path) -> None:
    primary = make_data_dir(tmp_path / "primary")
    link = tmp_path / "link"
    link.symlink_to(primary)
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(link, replace=True, protected=[primary])
    dotted = tmp_path / "x" / ".." / "primary"
    (tmp_path / "x").mkdir()
    with pytest.raises(UnsafeDataDirectory):
        check_replaceable(dotted, replace=True, protected=[primary])


def test_sibling_of_protected_is_fine(tmp_path: Path) -> None:
    primary = make_data_dir(tmp_path / "primary")
    # a name that shares a prefix is not "inside" it
    state = check_replaceable(tmp_path / "primary2", replace=False, protected=[primary])
    assert state.empty


def test_running_server_is_refused(tmp_path: Path) -> None:
    target = make_data_dir(tmp_path / "running")
    # our own pid: certainly alive
    (target / "postmaster.pid").write_text(f"{os.getpid()}\n{target}\n")
    with pytest.raises(UnsafeDataDirectory, match="running"):
        check_replaceable(target, replace=True)
    state = check_replaceable(target, replace=True, allow_running=True)
    assert state.running_pid == os.getpid()


def test_garbage_pid_file_is_not_a_running_server(tmp_path: Path) -> None:
    target = make_data_dir(tmp_path / "stale")
    (target / "postmaster.pid").write_text("not a pid\n")
    assert inspect(target).running_pid is None
    assert check_replaceable(target, replace=True).is_data_dir


def test_wipe_contents(tmp_path: Path) -> None:
    target = make_data_dir(tmp_path / "d")
    (target / "base" / "1").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (target / "link").symlink_to(outside)
    mode = target.stat().st_mode
    assert wipe_contents(target)
    assert target.is_dir()
    assert list(target.iterdir()) == []
    assert target.stat().st_mode == mode
    assert (outside / "keep").exists()  # the symlink was removed, not followed
    assert not wipe_contents(target)
    assert not wipe_contents(tmp_path / "missing")
