#!/usr/bin/python3
"""test/fake_inference/fake_server.py: an OpenAI-compatible fake inference server.

Serves POST {base}/v1/chat/completions, where the first path segment before
/v1 (if any) names the region: http://HOST:PORT/us-east is region "us-east",
http://HOST:PORT is region "default". Every request is recorded, so tests
count model calls, not just rows.

Control (JSON bodies):
  POST /_control {"latency": 0.5}                      all regions
  POST /_control {"region": "us-east", "mode": "429", "retry_after": 2, "count": 5}
      mode: ok | 429 | 500 | error_body | hang | close | malformed, or one
            of the hostile modes below
      retry_after: with mode 429, send Retry-After (omit for none; any
      text, e.g. "99999999999999999999")
      count: the mode applies to the next N requests of that scope, then ok
      (omit for "until changed")

  Hostile modes (bytes a broken or malicious provider sends):
      invalid_utf8_content  200 whose message content holds a raw 0xFF byte
                            (so the body is not valid UTF-8)
      invalid_utf8_500      500 whose JSON error body holds a raw 0xFF byte
      multibyte_at_cut      500 with a text body in which a 3-byte character
                            (U+20AC) starts at byte cut_at - 1, so a cut
                            after cut_at bytes splits it ("cut_at", default
                            300: the runner's excerpt of an error body)
      invalid_utf8_request_id  a normal answer with X-Request-Id: req-<0xFF>
      nul_content           200 whose content is "before\\u0000after"
      oversized             200, valid JSON, "size" bytes long (default
                            16 MiB + 1: one byte over the runner's cap)
      raw                   "status" (default 200), "body" and "headers" as
                            given; body and header values are text whose
                            code points 0-255 are sent as those bytes
                            (latin-1), so any byte can be sent
      The mode's parameters (cut_at, size, status, body, headers) are given
      in the same control message as the mode.
  POST /_control {"reset": true}                       settings and log
  GET  /_requests    {"count", "in_progress", "requests": [...]}
  GET  /_healthz     200

Usage: fake_server.py [--host 127.0.0.1] [--port 0]; the first stdout line is
the bound port. Python standard library only.
"""
import argparse
import json
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BILLING_ERROR = ("HTTP 429: Too Many Requests: workspace billing cycle spend "
                 "limit reached")
MODE_PARAMS = ("cut_at", "size", "status", "body", "headers")
RUNNER_BODY_CAP = 16 * 1024 * 1024  # runner/http_client.cpp's response cap


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.settings = {}  # region or "*" -> dict(mode, latency, retry_after, count, params)
        self.requests = []
        self.in_progress = 0

    def settings_for(self, region):
        """The effective settings for one request; consumes a `count`."""
        with self.lock:
            merged = {"mode": "ok", "latency": 0.0, "retry_after": None, "params": {}}
            for scope in ("*", region):
                s = self.settings.get(scope)
                if not s:
                    continue
                if "latency" in s:
                    merged["latency"] = s["latency"]
                if s.get("mode") and s.get("count") != 0:
                    merged["mode"] = s["mode"]
                    merged["retry_after"] = s.get("retry_after")
                    merged["params"] = s.get("params") or {}
                    if s.get("count") is not None:
                        s["count"] -= 1
            return merged


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; the request log is the record
        pass

    def _send_json(self, status, obj, headers=None):
        self._send_bytes(status, json.dumps(obj).encode(), headers)

    def _send_bytes(self, status, body, headers=None, content_type="application/json"):
        """Sends body as is; header values are str, sent as latin-1 bytes
        (http.server's encoding), so "\\xff" goes out as the byte 0xFF."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, record, req, content):
        """A normal chat completion whose message content is `content`."""
        return {
            "id": "chatcmpl-fake-%d" % record["seq"],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _respond_hostile(self, mode, params, record, req, prompt):
        """The hostile modes (see the module docstring); False if `mode` is not one."""
        if mode == "invalid_utf8_content":
            # json.dumps escapes non-ASCII, so put the raw byte in afterwards.
            body = json.dumps(self._answer(record, req, "bad byte [MARK] in: %s" % prompt)).encode()
            self._send_bytes(200, body.replace(b"[MARK]", b"\xff"))
        elif mode == "invalid_utf8_500":
            self._send_bytes(500, b'{"error":{"message":"internal error \xff near byte 20"}}')
        elif mode == "multibyte_at_cut":
            cut_at = int(params.get("cut_at", 300))
            body = b"e" * (cut_at - 1) + "\u20ac".encode() + b" tail of the error"
            self._send_bytes(500, body, content_type="text/plain; charset=utf-8")
        elif mode == "invalid_utf8_request_id":
            answer = self._answer(record, req, "fake answer to: %s" % (prompt,))
            self._send_json(200, answer, {"X-Request-Id": "req-\xff"})
        elif mode == "nul_content":
            self._send_json(200, self._answer(record, req, "before\u0000after"))
        elif mode == "oversized":
            size = int(params.get("size", RUNNER_BODY_CAP + 1))
            body = json.dumps(self._answer(record, req, "[FILL]")).encode()
            fill = size - (len(body) - len(b"[FILL]"))
            self._send_bytes(200, body.replace(b"[FILL]", b"x" * max(0, fill)))
        elif mode == "raw":
            headers = {k: v for k, v in (params.get("headers") or {}).items()}
            self._send_bytes(int(params.get("status", 200)), params.get("body", "").encode("latin-1"), headers)
        else:
            return False
        return True

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _client_gone(self):
        """True when the client closed its end (it aborted the request)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _wait(self, seconds):
        """Sleeps up to `seconds`; returns False if the client went away."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if self._client_gone():
                return False
            time.sleep(min(0.02, left))

    def do_GET(self):
        if self.path == "/_requests":
            with STATE.lock:
                self._send_json(200, {"count": len(STATE.requests),
                                      "in_progress": STATE.in_progress,
                                      "requests": list(STATE.requests)})
        elif self.path == "/_healthz":
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self):
        raw = self._read_body()
        if self.path == "/_control":
            ctl = json.loads(raw or b"{}")
            with STATE.lock:
                if ctl.get("reset"):
                    STATE.reset()
                scope = ctl.get("region", "*")
                s = STATE.settings.setdefault(scope, {})
                for key in ("mode", "latency", "retry_after", "count"):
                    if key in ctl:
                        s[key] = ctl[key]
                if "mode" in ctl and "count" not in ctl:
                    s["count"] = None
                if "mode" in ctl and "retry_after" not in ctl:
                    s["retry_after"] = None
                if "mode" in ctl:  # a mode's parameters come with it
                    s["params"] = {k: ctl[k] for k in MODE_PARAMS if k in ctl}
            self._send_json(200, {"ok": True})
            return
        path = self.path.split("?", 1)[0]
        if not path.endswith("/v1/chat/completions"):
            self._send_json(404, {"error": "not found"})
            return
        prefix = path[: -len("/v1/chat/completions")].strip("/")
        region = prefix.split("/")[-1] if prefix else "default"
        try:
            req = json.loads(raw)
        except ValueError:
            req = {}
        messages = req.get("messages") or [{}]
        prompt = messages[-1].get("content") if isinstance(messages[-1], dict) else None
        settings = STATE.settings_for(region)
        record = {
            "region": region,
            "model": req.get("model"),
            "prompt": prompt,
            "body": req,
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "worker": self.headers.get("X-Execguard-Worker"),
            "authorization": bool(self.headers.get("Authorization")),
            "mode": settings["mode"],
            "received_at": time.time(),
            "outcome": "in_progress",
        }
        with STATE.lock:
            record["seq"] = len(STATE.requests)
            STATE.requests.append(record)
            STATE.in_progress += 1
        try:
            self._respond(settings, record, req, prompt)
        finally:
            with STATE.lock:
                STATE.in_progress -= 1

    def _respond(self, settings, record, req, prompt):
        mode = settings["mode"]
        wait = 3600.0 if mode == "hang" else float(settings["latency"] or 0)
        if wait and not self._wait(wait):
            record["outcome"] = "client_aborted"
            self.close_connection = True
            return
        record["outcome"] = mode
        if mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if mode == "429":
            headers = {}
            if settings.get("retry_after") is not None:
                headers["Retry-After"] = str(settings["retry_after"])
            self._send_json(429, {"error": {"message": "Rate limit exceeded",
                                            "type": "rate_limit"}}, headers)
            return
        if mode == "500":
            self._send_json(500, {"error": {"message": "internal error"}})
            return
        if mode == "error_body":
            self._send_json(200, {"success": False, "error": BILLING_ERROR})
            return
        if mode == "malformed":
            self._send_json(200, {"id": "x", "object": "chat.completion"})
            return
        if self._respond_hostile(mode, settings.get("params") or {}, record, req, prompt):
            return
        text = "fake answer to: %s" % (prompt,)
        self._send_json(200, {
            "id": "chatcmpl-fake-%d" % record["seq"],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len((prompt or "").split()),
                      "completion_tokens": len(text.split()),
                      "total_tokens": len((prompt or "").split()) + len(text.split())},
        }, {"X-Request-Id": "fake-%d" % record["seq"]})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve(host, port, handler):
    """Serves until interrupted; the bound port goes to stdout first."""
    server = Server((host, port), handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.host, args.port, Handler)


if __name__ == "__main__":
    sys.exit(main())
