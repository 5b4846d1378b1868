"""The benchmark scenarios B1-B4; B5 is in comparison.py. Each prints its figures."""

import os
import sys
import time
from datetime import datetime, timedelta, timezone

from aqbench import (KEY, Mock, Service, create_tasks, header, http, log, measure_polls,
                     poll_task, task_total, verdict, wait_until, wrk)

# Status polls that report a benchmark job in flight, so tasks stay in flight for the whole run.
ENDLESS = 1_000_000


def submits(mock):
    """Requests at the mock other than status polls and webhooks: the submits."""
    stats = mock.stats()
    return stats["requests"] - stats["statusPolls"] - stats["webhooks"]


def b1():
    """Poll throughput at a 1 s interval through the whole engine, against wrk on the mock."""
    header("B1 poll throughput", "bench/run.sh b1")
    seconds = int(os.environ.get("AQ_B1_SECONDS", "15"))
    mock = Mock()
    service = Service()
    try:
        service.start()
        job = http("POST", mock.url + "/replicate/v1/predictions",
                   body=b'{"version":"v","input":{"prompt":"p"}}',
                   headers={"Authorization": "Bearer bench",
                            "X-Mock-Scenario": f"polls={ENDLESS}"})
        status_url = f"{mock.url}/replicate/v1/predictions/{job['id']}"
        wrk_rate, _, _ = wrk(status_url, 5, connections=32, headers=["Authorization: Bearer bench"])
        log(f"wrk against the mock status route (32 connections, 5 s): {wrk_rate:,.0f} req/s")
        target = wrk_rate / 2
        # Offer 20 % more polls per second than the target, capped so creation stays short.
        count = int(os.environ.get("AQ_B1_TASKS", min(max(target * 1.2, 1000), 30000)))
        rate, _ = create_tasks(service, poll_task(mock, 1, ENDLESS, webhook=False), count,
                               seconds_limit=120)
        created = task_total(service)
        log(f"created {created:,} tasks at a 1 s interval ({rate:,.0f} creates/s)")
        # Sustained polling starts once every task has made its submit. Until then the engine
        # also works through the submits, which cost more than a poll.
        began = time.monotonic()
        submitted = wait_until(lambda: submits(mock) >= created, 180)
        log(f"every task submitted {time.monotonic() - began:.1f} s after the last create"
            if submitted else f"only {submits(mock):,} submits within 180 s; measuring anyway")
        time.sleep(3)
        polls, peak = measure_polls(mock, service, seconds)
        log(f"sustained status polls: {polls:,.0f}/s over {seconds} s "
            f"(offered {created:,}/s); service RSS {peak:,.0f} MiB")
        log(f"ratio to wrk: {polls / wrk_rate:.2f} (target >= 0.50): "
            f"{verdict(polls >= target)}")
    finally:
        service.stop()
        mock.stop()
        service.remove_data()


def b2():
    """100,000 tasks in flight at a 5 s interval: memory, poll lateness, API latency."""
    header("B2 capacity", "bench/run.sh b2")
    count = int(os.environ.get("AQ_B2_TASKS", "100000"))
    seconds = int(os.environ.get("AQ_B2_SECONDS", "20"))
    mock = Mock(poll_gaps=True)
    service = Service()
    try:
        service.start()
        began = time.monotonic()
        rate, _ = create_tasks(service, poll_task(mock, 5, ENDLESS, webhook=False), count,
                               seconds_limit=300)
        created = task_total(service)
        log(f"created {created:,} tasks at a 5 s interval in {time.monotonic() - began:.0f} s "
            f"({rate:,.0f} creates/s)")
        # As in B1, the window opens once every task has submitted, plus two intervals so every
        # task has polled at least once.
        began = time.monotonic()
        submitted = wait_until(lambda: submits(mock) >= created, 300)
        log(f"every task submitted {time.monotonic() - began:.0f} s after the last create"
            if submitted else f"only {submits(mock):,} submits within 300 s; measuring anyway")
        time.sleep(10)
        mock.reset()
        task_id = http("GET", service.url + "/v1/tasks?limit=1",
                       headers={"Authorization": "Bearer " + KEY})["tasks"][0]["id"]
        api_rate, api, _ = wrk(f"{service.url}/v1/tasks/{task_id}", seconds // 2, connections=4,
                               threads=1, headers=[f"Authorization: Bearer {KEY}"],
                               latency=True)
        polls, peak = measure_polls(mock, service, seconds - seconds // 2)
        gaps = mock.stats()["gaps"]
        late_p99 = gaps["p99"] - 5000
        log(f"status polls: {polls:,.0f}/s (offered {created / 5:,.0f}/s)")
        log(f"service RSS: {peak:,.0f} MiB (target <= 1024): {verdict(peak <= 1024)}")
        log(f"gap between a job's polls, ms: p50 {gaps['p50']}, p90 {gaps['p90']}, "
            f"p99 {gaps['p99']}, max {gaps['max']} ({gaps['count']:,} gaps)")
        if gaps["count"] == 0:
            cycle = created / max(polls, 1)
            log("poll lateness: no job was polled twice within the window. At the measured "
                f"rate each job is polled every {cycle:,.0f} s, about {cycle - 5:,.0f} s late: "
                "TARGET NOT MET")
        else:
            log(f"poll lateness p99 (gap p99 - 5000 ms, an upper bound): {late_p99} ms "
                f"(target <= 250): {verdict(late_p99 <= 250)}")
        log(f"GET /v1/tasks/{{id}} under load (4 connections): {api_rate:,.0f} req/s, "
            f"p50 {api.get('p50', 0):.1f} ms, p99 {api.get('p99', 0):.1f} ms "
            f"(target <= 50): {verdict(api.get('p99', 1e9) <= 50)}")
    finally:
        service.stop()
        mock.stop()
        service.remove_data()


def b3():
    """Creates acknowledged after commit: peak rate, and latency at 1,000 creates/s."""
    header("B3 create", "bench/run.sh b3")
    mock = Mock()
    service = Service()
    try:
        service.start()
        # Delayed by an hour, so the scheduler runs none of them and only creation is measured.
        later = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        task = poll_task(mock, 5, ENDLESS)
        task["delayUntil"] = later
        rate, percentiles = create_tasks(service, task, 0, connections=32, seconds_limit=10)
        log(f"peak: {rate:,.0f} creates/s (wrk, 2 threads, 32 connections, 10 s), "
            f"p50 {percentiles['p50']:.1f} ms, p99 {percentiles['p99']:.1f} ms "
            f"(target >= 5,000/s): {verdict(rate >= 5000)}")
        rate, percentiles = create_tasks(service, task, 0, connections=10, seconds_limit=10,
                                         delay_ms=10)
        log(f"paced: {rate:,.0f} creates/s (10 connections, 10 ms pause after each answer), "
            f"p50 {percentiles['p50']:.1f} ms, p99 {percentiles['p99']:.1f} ms "
            f"(target p99 <= 20 ms near 1,000/s): {verdict(percentiles['p99'] <= 20)}")
        log(f"tasks stored: {task_total(service):,}")
    finally:
        service.stop()
        mock.stop()
        service.remove_data()


def b4():
    """A restart with 100,000 tasks in flight: time until polling resumes."""
    header("B4 recovery", "bench/run.sh b4")
    count = int(os.environ.get("AQ_B4_TASKS", "100000"))
    mock = Mock()
    service = Service()
    try:
        service.start()
        create_tasks(service, poll_task(mock, 5, ENDLESS, webhook=False), count,
                     seconds_limit=300)
        created = task_total(service)
        time.sleep(6)
        log(f"{created:,} tasks in flight; polls before the crash: "
            f"{mock.stats()['statusPolls']:,}")
        service.stop(hard=True)
        log("service killed with SIGKILL")
        before = mock.stats()["statusPolls"]
        began = time.monotonic()
        service.start(wait=120)
        healthy = time.monotonic() - began
        resumed = None
        while time.monotonic() - began < 120:
            if mock.stats()["statusPolls"] > before:
                resumed = time.monotonic() - began
                break
            time.sleep(0.02)
        time.sleep(5)
        polls, _ = measure_polls(mock, service, 5)
        log(f"restart to API answering: {healthy:.2f} s")
        if resumed is None:
            log("polling did not resume within 120 s: TARGET NOT MET")
        else:
            log(f"restart to first poll: {resumed:.2f} s (target <= 5 s): "
                f"{verdict(resumed <= 5)}")
        log(f"polls 5-10 s after the restart: {polls:,.0f}/s (offered {created / 5:,.0f}/s)")
    finally:
        service.stop()
        mock.stop()
        service.remove_data()


if __name__ == "__main__":
    {"b1": b1, "b2": b2, "b3": b3, "b4": b4}[sys.argv[1]]()
