"""The B5 workload written the way Celery users write it: a submit task, then a poll task that
re-queues itself with a countdown until the job ends, then a webhook POST. Run as a worker
with `celery -A celery_poller worker`; run as a script with a count to enqueue that many jobs.
"""

import json
import os
import sys

import requests
from celery import Celery

app = Celery("celery_poller", broker=os.environ["BENCH_BROKER"])
app.conf.task_ignore_result = True
MOCK = os.environ["BENCH_MOCK"]
HEADERS = {"Authorization": "Bearer bench",
           "X-Mock-Scenario": f"polls={os.environ.get('BENCH_POLLS', '3')}"}
session = requests.Session()


@app.task
def submit():
    body = {"version": "v", "input": {"prompt": "a lighthouse"}}
    job = session.post(f"{MOCK}/replicate/v1/predictions", json=body, headers=HEADERS,
                       timeout=30).json()
    poll.apply_async((job["id"],), countdown=1)


@app.task
def poll(job_id):
    job = session.get(f"{MOCK}/replicate/v1/predictions/{job_id}", headers=HEADERS,
                      timeout=30).json()
    if job["status"] in ("succeeded", "failed", "canceled"):
        session.post(f"{MOCK}/hooks", data=json.dumps({"event": "task.completed", "task": job}),
                     headers={"Content-Type": "application/json"}, timeout=30)
    else:
        poll.apply_async((job_id,), countdown=1)


if __name__ == "__main__":
    for _ in range(int(sys.argv[1])):
        submit.delay()
