#!/usr/bin/python3
"""test/chaos/chaos_fake_server.py: the fake inference server with random faults.

Wraps test/fake_inference/fake_server.py (same request log, same /_control,
same fault modes) and adds, for the chaos harness:

  * a random fault per request, drawn from a seeded generator:
      POST /_chaos {"rates": {"429": 0.04, "429_retry_after": 0.04, "500": 0.05,
                              "error_body": 0.04, "hang": 0.03, "close": 0.04},
                    "latency": [0.05, 1.0], "retry_after": 1}
      POST /_chaos {"rates": {}, "latency": [0, 0.05]}      faults off
    mode "429_retry_after" is logged as mode "429" with "retry_after" set;
    the record also keeps "fault" (the kind drawn) so faults are counted by kind;
  * a successful answer whose content carries the server's request sequence
    number ("chaos answer #<seq> ..."), so two writes of one execution's
    result would be told apart.

Usage: chaos_fake_server.py [--host 127.0.0.1] [--port 0] [--seed S];
the first stdout line is the bound port.
"""
import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fake_inference"))
import fake_server  # noqa: E402

FAULT_KINDS = ("429", "429_retry_after", "500", "error_body", "hang", "close")


class Chaos:
    def __init__(self, seed):
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.rates = {}
        self.latency = (0.0, 0.0)
        self.retry_after = 1

    def configure(self, ctl):
        with self.lock:
            if "rates" in ctl:
                rates = {k: float(v) for k, v in ctl["rates"].items()}
                unknown = set(rates) - set(FAULT_KINDS)
                if unknown:
                    raise ValueError("unknown fault kinds %s" % sorted(unknown))
                self.rates = rates
            if "latency" in ctl:
                lo, hi = ctl["latency"]
                self.latency = (float(lo), float(hi))
            if "retry_after" in ctl:
                self.retry_after = ctl["retry_after"]

    def draw(self):
        with self.lock:
            x = self.rng.random()
            fault = "none"
            acc = 0.0
            for kind in FAULT_KINDS:
                acc += self.rates.get(kind, 0.0)
                if x < acc:
                    fault = kind
                    break
            latency = self.rng.uniform(*self.latency)
            return fault, latency, self.retry_after


CHAOS = Chaos(0)
_base_settings_for = fake_server.STATE.settings_for


def chaos_settings_for(region):
    """The base server's settings (an explicit /_control mode wins), else a random fault."""
    merged = _base_settings_for(region)
    fault, latency, retry_after = CHAOS.draw()
    merged["fault"] = "control" if merged["mode"] != "ok" else fault
    if merged["mode"] == "ok" and fault != "none":
        merged["mode"] = "429" if fault.startswith("429") else fault
        merged["retry_after"] = retry_after if fault == "429_retry_after" else None
    if not merged.get("latency"):
        merged["latency"] = latency
    return merged


fake_server.STATE.settings_for = chaos_settings_for


class ChaosHandler(fake_server.Handler):
    def do_POST(self):
        if self.path == "/_chaos":
            try:
                CHAOS.configure(json.loads(self._read_body() or b"{}"))
            except (ValueError, TypeError, KeyError) as e:
                self._send_json(400, {"error": str(e)})
                return
            self._send_json(200, {"ok": True})
            return
        super().do_POST()

    def _respond(self, settings, record, req, prompt):
        record["fault"] = settings.get("fault", "none")
        record["retry_after"] = settings.get("retry_after")
        record["latency"] = settings.get("latency")
        if settings["mode"] != "ok":
            return super()._respond(settings, record, req, prompt)
        if settings["latency"] and not self._wait(float(settings["latency"])):
            record["outcome"] = "client_aborted"
            self.close_connection = True
            return
        record["outcome"] = "ok"
        seq = record["seq"]
        text = "chaos answer #%d to: %s" % (seq, prompt)
        self._send_json(200, {
            "id": "chatcmpl-chaos-%d" % seq,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()),
                      "total_tokens": 1 + len(text.split())},
        }, {"X-Request-Id": "chaos-%d" % seq})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    CHAOS.rng.seed(args.seed)
    fake_server.serve(args.host, args.port, ChaosHandler)


if __name__ == "__main__":
    sys.exit(main())
