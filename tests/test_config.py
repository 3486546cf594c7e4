"""Configuration: TOML plus OPTIMUS_* variables; every mistake names the key and where it came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from optimus import config
from optimus.config import KEYS, ConfigError, load


def test_file_then_environment_with_relative_paths_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "optimus.toml"
    cfg.parent.mkdir()
    cfg.write_text('data_paths = ["data"]\nwarehouse = "wh/o.duckdb"\napi_port = 9000\nedge = false\n')
    settings = load(cfg, env={"OPTIMUS_API_PORT": "9100", "OPTIMUS_IGNORED_SERVICES": '["EmailCRM"]'})
    assert settings.data_paths == [cfg.parent / "data"]
    assert settings.warehouse_path() == cfg.parent / "wh" / "o.duckdb"
    assert settings.api_port == 9100 and settings.edge is False and settings.ignored_services == ["EmailCRM"]
    assert settings.api_host == "127.0.0.1"  # localhost unless told otherwise


@pytest.mark.parametrize(
    "text, env, words",
    [
        ("data_path = []\n", {}, ["unknown setting 'data_path'", "optimus.toml"]),
        ("api_port = 'many'\n", {}, ["'api_port'", "optimus.toml"]),
        ("api_port = [9100]\n", {}, ["'api_port'", "whole number"]),  # a list is refused by name, not a TypeError
        ("email_crm_mode = 'sometimes'\n", {}, ["'email_crm_mode'"]),
        ("warehouse = 'mysql://x'\n", {}, ["'warehouse'", "scheme"]),
        ("", {"OPTIMUS_EDGE": "perhaps"}, ["OPTIMUS_EDGE", "'edge'"]),
        ("", {"OPTIMUS_NOPE": "1"}, ["OPTIMUS_NOPE"]),
        ("data_paths = [\n", {}, ["not valid TOML"]),
    ],
)
def test_bad_settings_name_the_key_and_the_file(tmp_path: Path, text: str, env: dict, words: list[str]) -> None:
    cfg = tmp_path / "optimus.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(cfg, env=env)
    for word in words:
        assert word in str(err.value)


def test_a_missing_data_path_is_a_clear_error(tmp_path: Path, cli, settings_for) -> None:
    settings = settings_for(tmp_path / "does-not-exist")
    result = cli(["ingest"], settings)
    assert result.exit_code == 2
    assert "does-not-exist" in result.output and "does not exist" in result.output


def test_init_writes_an_example_that_loads_and_documents_every_key(tmp_path: Path, cli) -> None:
    target = tmp_path / "optimus.toml"
    assert cli(["init", str(target)]).exit_code == 0
    text = target.read_text()
    for key in KEYS:
        assert re.search(rf"^#? ?{key} = ", text, re.M), key
    settings = load(target, env={})
    assert settings.memory_limit == config.Settings().memory_limit
    assert cli(["init", str(target)]).exit_code == 2  # never overwrites
