"""The tests' OpenAI-compatible LLM server: llama.cpp's own server, from xllamacpp's
prebuilt wheel (a dev dependency; no compiler), serving one GGUF on loopback until it
is sent SIGTERM or SIGINT.

    python tests/support/llm_server.py MODEL.gguf PORT ALIAS API_KEY
"""

from __future__ import annotations

import signal
import sys
import threading


def main(argv: list[str]) -> int:
    import xllamacpp

    model, port, alias, key = argv
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {alias}
    params.hostnames = ["127.0.0.1"]
    params.port = int(port)
    params.api_keys = [key]
    params.n_ctx = 4096
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.sampling.seed = 1234
    params.endpoint_metrics = False
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = xllamacpp.Server(params)
    print(f"listening on {server.listening_address}", flush=True)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
