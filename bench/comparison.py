"""B5: the same submit-poll-webhook workload run by asyncqueue, by Celery with Redis (a task
that re-queues itself with a countdown until the job ends) and by a plain asyncio poller.

Each system gets JOBS jobs at once; each job is one submit to the mock's Replicate API,
POLLS status polls 1 s apart, and one webhook to the mock's /hooks. Throughput is jobs per
second from the first submit to the last webhook; memory is the peak resident set of the
system's own processes (the Celery worker and its children plus redis-server; the asyncio
process; the asyncqueue service), sampled every 0.25 s. The mock is not counted.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from aqbench import (BUILD, Mock, Service, create_tasks, free_port, header, log, poll_task,
                     rss_mib, verdict, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
POLLS = 3


def children(pid):
    """The process and all its descendants."""
    found = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            for child in file.read().split():
                found += children(int(child))
    except FileNotFoundError:
        pass
    return found


def wait_for_webhooks(mock, jobs, pids, limit):
    """Waits until `jobs` webhooks arrived; returns (seconds, peak RSS MiB) from now."""
    began = time.monotonic()
    peak = 0.0
    while time.monotonic() - began < limit:
        peak = max(peak, sum(rss_mib(pid) for root in pids for pid in children(root)))
        if mock.stats()["webhooks"] >= jobs:
            return time.monotonic() - began, peak
        time.sleep(0.25)
    raise SystemExit(f"only {mock.stats()['webhooks']} of {jobs} webhooks within {limit} s")


def run_asyncqueue(mock, jobs):
    service = Service()
    try:
        service.start()
        mock.reset()
        began = time.monotonic()
        create_tasks(service, poll_task(mock, 1, POLLS), jobs, seconds_limit=300)
        seconds, peak = wait_for_webhooks(mock, jobs, [service.process.pid], 300)
        return time.monotonic() - began, max(peak, service.rss())
    finally:
        service.stop()
        service.remove_data()


def run_celery(mock, jobs):
    redis_port = free_port()
    directory = tempfile.mkdtemp(prefix="aq-celery-")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", directory], stdout=subprocess.DEVNULL)
    environment = dict(os.environ, BENCH_BROKER=f"redis://127.0.0.1:{redis_port}/0",
                       BENCH_MOCK=mock.url, BENCH_POLLS=str(POLLS), PYTHONPATH=HERE)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_poller", "worker", "--loglevel=WARNING"],
        env=environment, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)
        mock.reset()
        began = time.monotonic()
        subprocess.run([sys.executable, os.path.join(HERE, "celery_poller.py"), str(jobs)],
                       env=environment, check=True, timeout=300)
        seconds, peak = wait_for_webhooks(mock, jobs, [worker.pid, redis.pid], 600)
        return time.monotonic() - began, peak
    finally:
        worker.terminate()
        redis.terminate()
        worker.wait(30)
        redis.wait(30)
        shutil.rmtree(directory, ignore_errors=True)


def run_asyncio(mock, jobs):
    mock.reset()
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "asyncio_poller.py"), mock.url, str(jobs),
         str(POLLS)])
    try:
        seconds, peak = wait_for_webhooks(mock, jobs, [process.pid], 600)
        process.wait(30)
        return time.monotonic() - began, peak
    finally:
        if process.poll() is None:
            process.kill()


def main():
    header("B5 against Celery and asyncio", "bench/run.sh b5")
    aq_jobs = int(os.environ.get("AQ_B5_JOBS", "20000"))
    celery_jobs = int(os.environ.get("AQ_B5_CELERY_JOBS", "2000"))
    log(f"workload: a submit, {POLLS} polls 1 s apart and a webhook per job; "
        f"{aq_jobs:,} jobs for asyncqueue and asyncio, {celery_jobs:,} for Celery")
    mock = Mock()
    results = {}
    try:
        for name, run, jobs in [("asyncqueue", run_asyncqueue, aq_jobs),
                                ("asyncio", run_asyncio, aq_jobs),
                                ("celery", run_celery, celery_jobs)]:
            seconds, peak = run(mock, jobs)
            results[name] = (jobs / seconds, peak)
            log(f"{name}: {jobs:,} jobs in {seconds:.1f} s = {jobs / seconds:,.0f} jobs/s, "
                f"peak RSS {peak:,.0f} MiB")
    finally:
        mock.stop()
    aq_rate, aq_memory = results["asyncqueue"]
    celery_rate, celery_memory = results["celery"]
    log(f"asyncqueue / Celery: {aq_rate / celery_rate:.1f} x the throughput (target >= 10): "
        f"{verdict(aq_rate >= 10 * celery_rate)}; {aq_memory / celery_memory:.2f} x the memory "
        f"(target <= 0.25): {verdict(aq_memory <= celery_memory / 4)}")


if __name__ == "__main__":
    main()
