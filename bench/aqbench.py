"""Benchmark driver for asyncqueue: starts the mock providers and the service on 127.0.0.1,
drives load with wrk, samples counters and memory, and prints each scenario's figures.

Run through bench/run.sh, which installs the tools and builds the release binaries first.
Every load loop here is bounded by a count and by a time limit.
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("AQ_BUILD", "/tmp/aq-build-bench") + "/release"
KEY = "aq_benchmark_key_0123456789"
# Custom pollConfig targets get this limit per host, so the provider limiter is not what a
# benchmark measures (the default is 32 concurrent requests and 20 per second).
LIMITS = "custom=4096/1000000"
REPLICATE_VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


def stop_on_signal(number, frame):
    raise SystemExit(f"stopped by signal {number}")


signal.signal(signal.SIGTERM, stop_on_signal)


def log(message):
    print(message, flush=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=10):
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def rss_mib(pid):
    """Resident memory of a process in MiB, from /proc."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def wait_until(condition, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


class Mock:
    """asyncqueue-mock on a free port; GET /stats reports its counters."""

    def __init__(self, poll_gaps=False):
        self.port = free_port()
        arguments = [f"{BUILD}/asyncqueue-mock", "--port", str(self.port)]
        if poll_gaps:
            arguments.append("--poll-gaps")
        self.process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        if not wait_until(self.ready, 10):
            raise SystemExit("the mock did not start within 10 s")

    def ready(self):
        try:
            self.stats()
            return True
        except OSError:
            return False

    def stats(self):
        return http("GET", self.url + "/stats")

    def reset(self):
        http("POST", self.url + "/stats/reset", body=b"")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Service:
    """asyncqueue serve on a free port with a data directory under /tmp. `arguments` are added
    to the command line, and `prefix` runs before it (e.g. a taskset command)."""

    def __init__(self, data_directory=None, port=None, arguments=(), prefix=(), log_path=None):
        self.data = data_directory or tempfile.mkdtemp(prefix="aq-bench-")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or os.path.join(self.data, "service.log")
        self.arguments = list(arguments)
        self.prefix = list(prefix)
        self.process = None

    def start(self, wait=60):
        environment = dict(os.environ, ASYNCQUEUE_PROVIDER_LIMITS=LIMITS)
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                self.prefix + [
                    f"{BUILD}/asyncqueue", "serve", "--port", str(self.port), "--data-dir",
                    self.data, "--api-key", KEY, "--allow-private-network",
                    # The per-team API rate limit would cap the load the benchmarks offer.
                    "--rate-limit", "0",
                    "--builtin-providers-dir", os.path.join(ROOT, "providers")
                ] + self.arguments,
                stdout=output, stderr=output, env=environment, cwd=ROOT)
        if not wait_until(self.healthy, wait):
            raise SystemExit(f"the service did not respond within {wait} s; see {self.log_path}")
        return time.monotonic() - self.started_at

    def healthy(self):
        try:
            return http("GET", self.url + "/healthz", timeout=1)["status"] == "ok"
        except (OSError, ValueError):
            return False

    def rss(self):
        return rss_mib(self.process.pid)

    def stop(self, hard=False):
        if self.process is None or self.process.poll() is not None:
            return
        if hard:
            self.process.kill()
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def remove_data(self):
        shutil.rmtree(self.data, ignore_errors=True)


def poll_task(mock, interval, polls, webhook=True):
    """A custom pollConfig task against the mock's Replicate predictions API."""
    task = {
        "targetUrl": mock.url + "/replicate/v1/predictions",
        "headers": {"Authorization": "Bearer bench", "X-Mock-Scenario": f"polls={polls}"},
        "body": json.dumps({"version": REPLICATE_VERSION, "input": {"prompt": "a lighthouse"}}),
        "pollConfig": {
            "urlTemplate": mock.url + "/replicate/v1/predictions/{startResult.body.id}",
            "statusPath": "status",
            "doneValues": ["succeeded"],
            "failValues": ["failed", "canceled"],
            "resultPath": "output",
            "interval": interval,
            "maxDuration": 86400,
        },
    }
    if webhook:
        task["onCompleteUrl"] = mock.url + "/hooks"
    return task


def wrk(url, seconds, connections=32, threads=2, script=None, environment=None, headers=(),
        latency=False, until=None):
    """Runs wrk and returns (requests per second, latency percentiles in ms, raw output).
    With `until`, wrk is interrupted (SIGINT, after which it prints its figures for the time it
    ran) as soon as `until()` returns true; wrk itself always runs its whole duration."""
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", "10s"]
    if latency:
        command.append("--latency")
    if script:
        command += ["-s", script]
    for header in headers:
        command += ["-H", header]
    command.append(url)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, **(environment or {})))
    try:
        if until:
            deadline = time.monotonic() + seconds
            while process.poll() is None and time.monotonic() < deadline:
                if until():
                    process.send_signal(signal.SIGINT)
                    break
                time.sleep(0.2)
        output, _ = process.communicate(timeout=seconds + 60)
    finally:
        # On an error or Ctrl-C in the driver, wrk must not go on loading the service.
        if process.poll() is None:
            process.kill()
            process.wait()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = {}
    for name, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\b", output,
                                        re.M):
        scale = {"us": 0.001, "ms": 1, "s": 1000}[unit]
        percentiles["p" + name] = float(value) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        log(f"  wrk: {errors.group(1)} responses were not 2xx")
    return rate, percentiles, output


def create_tasks(service, task, count, connections=16, seconds_limit=600, delay_ms=0):
    """POSTs `count` copies of `task` with wrk; returns (creates per second, percentiles)."""
    task_file = os.path.join(service.data, "task.json")
    with open(task_file, "w") as file:
        json.dump(task, file)
    threads = 2
    environment = {"AQ_TASK_FILE": task_file, "AQ_KEY": KEY, "AQ_COUNT": str(count),
                   "AQ_THREADS": str(threads), "AQ_DELAY_MS": str(delay_ms)}
    existing = task_total(service) if count else 0
    rate, percentiles, _ = wrk(
        service.url + "/v1/tasks", seconds_limit, connections=connections, threads=threads,
        script=os.path.join(ROOT, "bench", "create.lua"), environment=environment, latency=True,
        until=(lambda: task_total(service) >= existing + count) if count else None)
    return rate, percentiles


def task_total(service, status=None):
    query = "?limit=1" + (f"&status={status}" if status else "")
    answer = http("GET", service.url + "/v1/tasks" + query,
                  headers={"Authorization": "Bearer " + KEY}, timeout=30)
    return answer["pagination"]["total"]


def measure_polls(mock, service, seconds):
    """Status polls per second at the mock over `seconds`, and the service's peak RSS."""
    start = mock.stats()["statusPolls"]
    began = time.monotonic()
    peak = 0.0
    while time.monotonic() - began < seconds:
        time.sleep(0.5)
        peak = max(peak, service.rss())
    end = mock.stats()["statusPolls"]
    return (end - start) / (time.monotonic() - began), peak


def header(name, command):
    log(f"== {name}")
    log(f"command: {command}")
    log(f"machine: {platform.node()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"{platform.platform()}")
    log(f"date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")


def verdict(met):
    return "target met" if met else "TARGET NOT MET"
