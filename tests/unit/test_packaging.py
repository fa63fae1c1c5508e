"""Packaging truth: one version everywhere, a CHANGELOG that agrees, data files inside the package.

scripts/check-wheel.sh runs these against the installed wheel as well as the editable checkout,
so the data-file checks prove what the wheel carries.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.resources
import itertools
import json
import re
from pathlib import Path

import pytest
from packaging.version import InvalidVersion, Version

import vllm_multimodal_embeddings as pkg
from vllm_multimodal_embeddings.__main__ import main
from vllm_multimodal_embeddings.server.flags import CHAT_TEMPLATE_PATH

ROOT = Path(__file__).resolve().parents[2]
DIST = "vllm-multimodal-embeddings"
_HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?P<rest>.*)$", re.M)
_DATE = re.compile(r"^ - (\d{4}-\d{2}-\d{2})$")


def changelog_problems(text: str, version: str) -> list[str]:
    """What is wrong between a Keep a Changelog text and the package version; empty when nothing.

    ``## [Unreleased]`` comes first; releases follow as ``## [X.Y.Z] - YYYY-MM-DD``, newest first.
    A release version (no ``.devN``) must be the newest release heading; a development version
    must be newer than every release heading (bump after releasing).
    """
    problems: list[str] = []
    headings = [(m["name"], m["rest"]) for m in _HEADING.finditer(text)]
    if not headings or headings[0] != ("Unreleased", ""):
        problems.append("the first `## [...]` heading must be `## [Unreleased]`")
    releases: list[tuple[Version, dt.date]] = []
    for name, rest in headings:
        if name == "Unreleased":
            continue
        try:
            release = Version(name)
        except InvalidVersion:
            problems.append(f"`## [{name}]` is not a version")
            continue
        date = _DATE.match(rest)
        if date is None:
            problems.append(f"`## [{name}]` needs ` - YYYY-MM-DD` after it")
            continue
        try:
            releases.append((release, dt.date.fromisoformat(date[1])))
        except ValueError:
            problems.append(f"`## [{name}]` has no valid date: {date[1]!r}")
    for (newer, newer_date), (older, older_date) in itertools.pairwise(releases):
        if not (newer > older and newer_date >= older_date):
            problems.append(f"releases out of order: [{newer}] above [{older}]")
    current = Version(version)
    if current.is_devrelease:
        stale = [str(r) for r, _ in releases if r >= current]
        if stale:
            problems.append(
                f"version {version} is older than released {', '.join(stale)}: bump _version.py"
            )
    elif not releases or releases[0][0] != current:
        newest = str(releases[0][0]) if releases else "none"
        problems.append(f"version {version} is a release; the newest release heading is {newest}")
    return problems


def test_one_version_in_source_metadata_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert str(Version(pkg.__version__)) == pkg.__version__, "write the version in PEP 440 form"
    # The installed metadata is built from _version.py; a mismatch means a second source or a
    # stale install.
    assert importlib.metadata.version(DIST) == pkg.__version__
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"vllm-mm-embed {pkg.__version__}\n"


def test_changelog_headings_match_the_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog_problems(text, pkg.__version__) == []


GOOD = "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-12-01\n\n## [0.1.0] - 2026-11-23\n"


@pytest.mark.parametrize(
    ("text", "version", "problem"),
    [
        (GOOD, "0.3.0.dev0", None),
        (GOOD, "0.2.0", None),
        (GOOD, "0.2.1", "version 0.2.1 is a release; the newest release heading is 0.2.0"),
        (GOOD, "0.2.0.dev0", "older than released 0.2.0"),
        (GOOD.replace("## [Unreleased]\n", ""), "0.3.0.dev0", "must be `## [Unreleased]`"),
        (GOOD.replace(" - 2026-12-01", ""), "0.3.0.dev0", "`## [0.2.0]` needs ` - YYYY-MM-DD`"),
        (GOOD.replace("2026-12-01", "2026-13-01"), "0.3.0.dev0", "no valid date"),
        (GOOD.replace("0.1.0", "0.3.0"), "0.4.0.dev0", "out of order: [0.2.0] above [0.3.0]"),
        (GOOD.replace("[0.1.0]", "[first]"), "0.3.0.dev0", "`## [first]` is not a version"),
    ],
)
def test_changelog_problems_names_each_mistake(
    text: str, version: str, problem: str | None
) -> None:
    problems = changelog_problems(text, version)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_package_data_ships_inside_the_package() -> None:
    root = importlib.resources.files(pkg)
    assert root.joinpath("py.typed").is_file()
    package_dir = Path(pkg.__file__).resolve().parent
    assert CHAT_TEMPLATE_PATH.resolve() == package_dir / "server" / "qwen3_vl_embedding.jinja"
    assert "<|im_start|>" in CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def test_server_args_points_at_the_packaged_template(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server-args", "--format", "json"]) == 0
    args = json.loads(capsys.readouterr().out)
    template = Path(args[args.index("--chat-template") + 1])
    assert template.is_file()
    assert template.resolve().parent.parent == Path(pkg.__file__).resolve().parent
