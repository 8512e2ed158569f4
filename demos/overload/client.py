"""Sends N concurrent requests to one URL; each request retries on 429 or 503 up
to RETRIES times, DELAY seconds apart, as a polite client would.

Prints one JSON object: per request whether it was served (HTTP 200), after how
many attempts, its wall time and how it ended; and the whole run's wall time.
"""
import argparse
import asyncio
import json
import time

import aiohttp

RETRY_STATUSES = (429, 503)


async def one_request(session, url, retries, delay, started):
    attempts = 0
    outcome = "unknown"
    served = False
    while True:
        attempts += 1
        try:
            async with session.get(url) as response:
                await response.read()
                outcome = "http %d" % response.status
                if response.status == 200:
                    served = True
                    break
                if response.status not in RETRY_STATUSES or attempts > retries:
                    break
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            # A dead server: connection refused or reset. Not worth retrying.
            outcome = type(error).__name__
            break
        await asyncio.sleep(delay)
    return {"served": served, "attempts": attempts, "outcome": outcome,
            "seconds": round(time.monotonic() - started, 3)}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--retries", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--no-keepalive", action="store_true",
                        help="one connection per attempt (Connection: close)")
    args = parser.parse_args()

    timeout = aiohttp.ClientTimeout(total=args.timeout)
    started = time.monotonic()
    connector = aiohttp.TCPConnector(force_close=args.no_keepalive)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        results = await asyncio.gather(*(
            one_request(session, args.url, args.retries, args.delay, started)
            for _ in range(args.concurrency)))
    print(json.dumps({"requests": results,
                      "served": sum(r["served"] for r in results),
                      "seconds": round(time.monotonic() - started, 3)}))


if __name__ == "__main__":
    asyncio.run(main())
