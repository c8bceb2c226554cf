"""Settings are checked once, where they are made (`rag.settings`): every command line
makes them through `settings_from_args`, and a bad value is one line naming the setting,
the same in each, before any work starts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import clean_env

from ingest.fetch import FetchPolicy
from rag.settings import Settings, SettingsError, get_settings, settings_from_args

ROOT = Path(__file__).resolve().parents[1]
BAD = "10.0.0.0/8, intranet_host!"
LINE = ("error: invalid setting RAG_FETCH_ALLOW: 'intranet_host!' is neither a network "
        "(10.0.0.0/8, 192.168.1.5) nor a host name")


@pytest.fixture(autouse=True)
def fresh_environment() -> Iterator[None]:
    get_settings.cache_clear()  # the environment is read once a process; these change it
    yield
    get_settings.cache_clear()


def test_fetch_allow_is_checked_when_the_settings_are_made(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="RAG_FETCH_ALLOW"):
        Settings(fetch_allow=BAD)
    monkeypatch.setenv("RAG_FETCH_ALLOW", BAD)
    with pytest.raises(SettingsError) as caught:
        settings_from_args()
    assert f"error: {caught.value}" == LINE
    monkeypatch.setenv("RAG_FETCH_ALLOW", "10.0.0.0/8, Intranet.Example.")
    get_settings.cache_clear()
    networks, hosts = settings_from_args().fetch_allow_parsed
    assert [str(n) for n in networks] == ["10.0.0.0/8"] and hosts == {"intranet.example"}
    assert FetchPolicy.from_settings(settings_from_args()).hosts == hosts


def test_a_bad_option_or_alias_is_named_as_the_user_sets_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="^invalid setting RAG_COLLECTION: collection "):
        settings_from_args(collection="x")
    monkeypatch.setenv("CHROMA_PORT", "not-a-port")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="^invalid setting CHROMA_PORT: "):
        settings_from_args()
    monkeypatch.delenv("CHROMA_PORT")
    get_settings.cache_clear()
    got = settings_from_args(data_dir=str(tmp_path / "~x" / ".." / "d"), collection="",
                             top_k=None)
    assert got.data_dir == (tmp_path / "d").resolve()  # resolved; "" and None keep the env's


@pytest.mark.parametrize("command", [
    ["-m", "rag", "ask", "anything"],
    ["-m", "rag", "token", "list"],
    ["-m", "ingest", "list"],
    ["-m", "eval", "run", "--dataset", str(ROOT / "eval/datasets/bbc_qa_dev.jsonl"),
     "--corpus", str(ROOT), "--limit", "1"],
    [str(ROOT / "app.py"), "--port", "1"],
], ids=["rag ask", "rag token", "ingest", "eval", "app"])
def test_every_command_line_says_a_bad_setting_in_one_line(command: list[str],
                                                            tmp_path: Path) -> None:
    env = clean_env(RAG_FETCH_ALLOW=BAD, RAG_DATA_DIR=str(tmp_path / "data"))
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip() == LINE, done.stderr
    assert not (tmp_path / "data").exists()  # nothing was made before the check
