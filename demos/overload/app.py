"""The overload scenario: three endpoints that each compute, wait 2 s on I/O, and
compute again, where one computation holds about 65 MB until the request ends.

Run with: python3 -m uvicorn app:app --host 127.0.0.1 --port PORT
The code is deliberately ordinary; sluice governs it without a change here.
"""
import asyncio
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse

# About 65 MB of small strings and the list that points at them.
ITEMS = 900_000
IO_SECONDS = 2.0

app = FastAPI()


def compute():
    return [str(i) for i in range(ITEMS)]


@app.get("/sync_endpoint")
def sync_endpoint():
    # FastAPI runs a plain def in its thread pool (up to 40 threads), so a
    # blocking sleep does not stop the event loop from taking the next request:
    # twelve requests hold memory at once, as in the async endpoint.
    before = compute()
    time.sleep(IO_SECONDS)
    after = compute()
    return {"items": len(before) + len(after)}


@app.get("/blocking_endpoint")
async def blocking_endpoint():
    # The blocking sleep inside the event loop: requests run strictly one at a
    # time. Safe, and slow.
    before = compute()
    time.sleep(IO_SECONDS)
    after = compute()
    return {"items": len(before) + len(after)}


@app.get("/async_endpoint_without_backpressure")
async def async_endpoint_without_backpressure():
    before = compute()
    await asyncio.sleep(IO_SECONDS)
    after = compute()
    return {"items": len(before) + len(after)}


# The hand-written fix: at most 4 requests in progress, 429 for the rest.
slots = asyncio.Semaphore(4)


@app.get("/async_endpoint_with_backpressure")
async def async_endpoint_with_backpressure():
    if slots.locked():
        return JSONResponse({"detail": "busy"}, status_code=429,
                            headers={"Retry-After": "1"})
    async with slots:
        before = compute()
        await asyncio.sleep(IO_SECONDS)
        after = compute()
        return {"items": len(before) + len(after)}
