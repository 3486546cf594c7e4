"""Like datasette's test_docs: a service, a command or a setting without documentation fails the build."""

from __future__ import annotations

from pathlib import Path

from optimus.cli import app
from optimus.config import DOCS, KEYS
from optimus.services import load_services

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    assert [k for k in KEYS if f"`{k}`" not in README] == []
    assert [k for k in KEYS if not DOCS.get(k)] == []


def test_every_service_is_in_the_readme_and_says_what_it_does() -> None:
    for name, cls in load_services().items():
        assert f"| {name} |" in README, name
        assert cls.__module__.startswith("optimus.services."), name
        doc = (cls.__doc__ or "") + (__import__(cls.__module__, fromlist=["_"]).__doc__ or "")
        assert len(doc.strip()) > 40, f"{name} has no docstring saying what it reads and writes"


def test_every_command_is_in_the_readme() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name in group.commands:
        assert f"`optimus {name}" in README, name


def test_the_readme_settings_table_and_optimus_init_say_the_same_text() -> None:
    """One text per setting (config.DOCS): the README's row (key, default, text) and `optimus init`'s comment
    are both that text, so the numbers they give (memory_limit's, say) cannot drift apart."""
    from optimus.config import example_config, readme_rows

    assert [row for row in readme_rows() if row not in README.splitlines()] == []
    comments = example_config().splitlines()
    assert [k for k in KEYS if f"# {DOCS[k]}" not in comments] == []
