"""The B5 workload as a plain asyncio program with aiohttp: one coroutine per job that
submits, sleeps 1 s between polls until the job ends, and posts the webhook. Usage:
asyncio_poller.py MOCK_URL JOBS POLLS
"""

import asyncio
import sys

import aiohttp

MOCK, JOBS, POLLS = sys.argv[1], int(sys.argv[2]), sys.argv[3]
HEADERS = {"Authorization": "Bearer bench", "X-Mock-Scenario": f"polls={POLLS}"}


async def run_job(session):
    body = {"version": "v", "input": {"prompt": "a lighthouse"}}
    async with session.post(f"{MOCK}/replicate/v1/predictions", json=body,
                            headers=HEADERS) as response:
        job = await response.json()
    while True:
        await asyncio.sleep(1)
        async with session.get(f"{MOCK}/replicate/v1/predictions/{job['id']}",
                               headers=HEADERS) as response:
            job = await response.json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            break
    async with session.post(f"{MOCK}/hooks", json={"event": "task.completed", "task": job}):
        pass


async def main():
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(run_job(session) for _ in range(JOBS)))


asyncio.run(main())
