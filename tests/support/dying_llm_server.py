"""An OpenAI-compatible server, run as its own process, that dies mid-answer.

`python dying_llm_server.py PORT [SIGNAL]`: it answers `/v1/models`; a chat completion
gets a 200, the headers of a chunked SSE stream and one delta, then the process kills
itself with SIGNAL (default SIGSEGV), as llama.cpp built for another CPU did on its
first prompt of more than one token. What the client sees is what a real crash shows:
a stream that stops without its last chunk, then a port where nothing listens.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"object": "list", "data": [{"id": "dying", "object": "model"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "dying",
                 "choices": [{"index": 0, "finish_reason": None,
                              "delta": {"content": "Relations soured because"}}]}
        event = f"data: {json.dumps(chunk)}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.flush()
        print("dying mid-answer", flush=True)
        os.kill(os.getpid(), SIGNAL)


if __name__ == "__main__":
    SIGNAL = signal.Signals[sys.argv[2]] if len(sys.argv) > 2 else signal.SIGSEGV
    signal.signal(SIGNAL, signal.SIG_DFL)
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("listening", flush=True)
    server.serve_forever()
