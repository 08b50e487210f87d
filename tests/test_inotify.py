"""The inotify reader: what each change on disk is reported as, and which folders stay watched."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeds.inotify import Kind, Notice, Notifications

WAIT = 2.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    content = tmp_path / "content"
    (content / "innlent" / "frett").mkdir(parents=True)
    (content / "innlent" / "frett" / "index.md").write_text("Frétt")
    (content / "erlent").mkdir()
    (content / ".git" / "objects").mkdir(parents=True)
    (content / "innlent" / "_drog").mkdir()
    return content


@pytest.fixture
def watching(root: Path) -> Iterator[Notifications]:
    with Notifications(str(root), depth=2) as notifications:
        yield notifications


def notices(notifications: Notifications, until: Kind | None = None) -> list[Notice]:
    """What is reported now; with `until`, reads on until a notice of that kind came."""
    found = notifications.read(WAIT if until else 0.05)
    while until is not None and not any(notice.kind is until for notice in found):
        more = notifications.read(WAIT)
        assert more, f"no {until} notice came"
        found.extend(more)
    return found


def write(path: Path, text: str = "Meginmál") -> None:
    path.write_text(text, encoding="utf-8")


def test_only_content_folders_down_to_the_bundles_are_watched(root: Path, watching: Notifications) -> None:
    # The content folder, two sections and one bundle: not .git, not _drog, nothing below a bundle.
    assert watching.watches == 4
    (root / "innlent" / "frett" / "myndir").mkdir()
    write(root / "innlent" / "frett" / "myndir" / "a.txt")
    write(root / ".git" / "objects" / "x")
    write(root / "innlent" / "_drog" / "index.md")
    assert [(notice.kind, notice.path) for notice in notices(watching)] == [
        (Kind.CHANGED, f"{root}/innlent/frett/myndir")
    ]


def test_a_file_written_and_closed(root: Path, watching: Notifications) -> None:
    write(root / "innlent" / "frett" / "index.md", "Ný útgáfa")
    found = notices(watching, until=Kind.CLOSED)
    assert found[-1] == Notice(Kind.CLOSED, f"{root}/innlent/frett/index.md")
    assert {notice.kind for notice in found[:-1]} == {Kind.WRITTEN}
    os.utime(root / "innlent" / "frett" / "index.md")
    assert notices(watching) == [Notice(Kind.WRITTEN, f"{root}/innlent/frett/index.md")]


def test_a_rename_inside_the_tree_is_one_notice_at_once(root: Path, watching: Notifications) -> None:
    """Both halves, paired: no wait for a pairing, as a library that holds the first half would."""
    old, new = root / "innlent" / "frett", root / "innlent" / "frett-nytt-nafn"
    old.rename(new)
    assert notices(watching) == [Notice(Kind.MOVED, str(new), True, str(old))]
    # The moved folder's watch follows it, under its new name.
    write(new / "index.md")
    assert notices(watching, until=Kind.CLOSED)[-1] == Notice(Kind.CLOSED, f"{new}/index.md")


def test_a_bundle_renamed_in_from_outside_and_out_again(root: Path, watching: Notifications, tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    write(staged / "index.md")
    staged.rename(root / "erlent" / "ny")
    assert notices(watching) == [Notice(Kind.MOVED, f"{root}/erlent/ny", True, None)]
    write(root / "erlent" / "ny" / "index.md", "Leiðrétt")
    assert notices(watching, until=Kind.CLOSED)[-1].path == f"{root}/erlent/ny/index.md"
    (root / "erlent" / "ny").rename(tmp_path / "burt")
    assert notices(watching) == [Notice(Kind.CHANGED, f"{root}/erlent/ny", True)]
    # Out of the tree, it is no longer watched: what happens to it there is not news here.
    write(tmp_path / "burt" / "index.md", "Annað")
    assert notices(watching) == []
    assert watching.watches == 4


def test_a_hidden_staging_folder_renamed_into_place_is_watched_from_then(root: Path, watching: Notifications) -> None:
    staging = root / "innlent" / ".stage-1"
    staging.mkdir()
    write(staging / "index.md")
    staging.rename(root / "innlent" / "tilbuin")
    found = notices(watching)
    assert found[-1] == Notice(Kind.MOVED, f"{root}/innlent/tilbuin", True, str(staging))
    write(root / "innlent" / "tilbuin" / "index.md", "Breytt")
    assert notices(watching, until=Kind.CLOSED)[-1].path == f"{root}/innlent/tilbuin/index.md"
    # And renamed to a hidden name, it is not watched any more.
    (root / "innlent" / "tilbuin").rename(root / "innlent" / ".old")
    notices(watching)
    write(root / "innlent" / ".old" / "index.md", "Gamalt")
    assert notices(watching) == []


def test_a_new_bundle_and_a_renamed_section_stay_watched(root: Path, watching: Notifications) -> None:
    (root / "innlent" / "glæný").mkdir()
    # Its watch is added when its making is read: what was written before that is not reported
    # (the bundle's own notice has the indexer read it, and the settle time vouches for its files).
    assert notices(watching) == [Notice(Kind.CHANGED, f"{root}/innlent/glæný", True)]
    write(root / "innlent" / "glæný" / "index.md")
    assert notices(watching, until=Kind.CLOSED)[-1] == Notice(Kind.CLOSED, f"{root}/innlent/glæný/index.md")
    (root / "innlent").rename(root / "frettir")
    assert notices(watching) == [Notice(Kind.MOVED, f"{root}/frettir", True, f"{root}/innlent")]
    write(root / "frettir" / "frett" / "index.md", "Í nýrri deild")
    assert notices(watching, until=Kind.CLOSED)[-1].path == f"{root}/frettir/frett/index.md"


def test_a_removed_bundle(root: Path, watching: Notifications) -> None:
    shutil.rmtree(root / "innlent" / "frett")
    found = notices(watching)
    assert found[-1] == Notice(Kind.CHANGED, f"{root}/innlent/frett", True)
    assert watching.watches == 3


def test_sections_only(root: Path) -> None:
    with Notifications(str(root), depth=1) as sections:
        assert sections.watches == 3
        write(root / "innlent" / "frett" / "index.md", "Breytt")
        (root / "innlent" / "ny").mkdir()
        assert notices(sections) == [Notice(Kind.CHANGED, f"{root}/innlent/ny", True)]


def test_an_overflowed_queue_says_so_and_watching_goes_on(root: Path, watching: Notifications) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 50_000:
        pytest.skip("the kernel's queue is too long to fill here")
    folder = root / "erlent"
    for number in range(limit // 2 + 100):  # each file made and closed: two notices
        write(folder / f"f{number}")
    found = notices(watching)
    assert Notice(Kind.LOST, str(root), True) in found
    assert watching.watches == 4
    write(root / "innlent" / "frett" / "index.md", "Eftir flóðið")
    assert notices(watching, until=Kind.CLOSED)[-1].path == f"{root}/innlent/frett/index.md"


def test_the_content_folder_itself_replaced(root: Path, watching: Notifications, tmp_path: Path) -> None:
    root.rename(tmp_path / "old-content")
    notices(watching)
    assert watching.lost_root


def test_a_folder_that_is_not_there_cannot_be_watched(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="missing"):
        Notifications(str(tmp_path / "missing"), depth=2)


WATCH_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")


def watches_in_use() -> int:
    """The inotify watches this user's processes hold: a line "inotify wd:…" each in their fdinfo."""
    total = 0
    for fdinfo in Path("/proc").glob("[0-9]*/fdinfo/*"):
        try:
            if fdinfo.parent.parent.stat().st_uid == os.getuid():
                total += fdinfo.read_text().count("inotify wd:")
        except OSError:  # gone meanwhile
            continue
    return total


def test_folders_past_the_kernels_limit_are_left_unwatched(root: Path) -> None:
    """The kernel's limit reached (by other programs, or by many new bundles): what fits is
    watched, the rest is skipped with a warning for the verification to cover, and nothing stops."""
    if not os.access(WATCH_LIMIT, os.W_OK):
        pytest.skip("lowering the kernel's limit on watches needs root")
    for number in range(40):
        (root / "erlent" / f"frett-{number}").mkdir()
    usual = WATCH_LIMIT.read_text()
    WATCH_LIMIT.write_text(f"{watches_in_use() + 10}\n")
    try:
        with Notifications(str(root), depth=2) as limited:
            assert 3 <= limited.watches <= 10
            assert limited.refused == 44 - limited.watches  # the root, 2 sections, 41 bundles
            # The content folder and the sections come first, and are watched: a new bundle is
            # news, though no watch is left for its own folder.
            (root / "innlent" / "ny").mkdir()
            assert notices(limited) == [Notice(Kind.CHANGED, f"{root}/innlent/ny", True)]
            assert limited.refused == 45 - limited.watches
    finally:
        WATCH_LIMIT.write_text(usual)
