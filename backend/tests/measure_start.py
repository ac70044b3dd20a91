#!/usr/bin/env python3
"""Measure an engine's start-to-listening time and SIGTERM-to-exit time.

    python backend/tests/measure_start.py EXECUTABLE [ARGS...] [--runs N]

Starts the command N times (default 10) with ``--port 0``, times the wait for the
listening line on stdout, GETs /health once, sends SIGTERM and times the exit.
Prints one JSON object with the min/median/max of each.
"""

import json
import signal
import statistics
import subprocess
import sys
import time
import urllib.request


def once(cmd):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd + ["--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    started = time.perf_counter() - t0
    port = json.loads(line)["port"]
    t1 = time.perf_counter()
    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60).read()
    health = time.perf_counter() - t1
    t2 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return started, health, time.perf_counter() - t2


def summary(values):
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main():
    args = sys.argv[1:]
    runs = 10
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    results = [once(args) for _ in range(runs)]
    print(json.dumps({"runs": runs, "start_to_listening_s": summary([r[0] for r in results]),
                      "first_health_s": summary([r[1] for r in results]),
                      "sigterm_to_exit_s": summary([r[2] for r in results])}))


if __name__ == "__main__":
    main()
