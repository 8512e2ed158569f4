"""The classic scenario's service, minimal: an async endpoint that awaits 2 s of
I/O. Run with: python3 -m uvicorn idle_app:app --host 127.0.0.1 --port PORT"""
import asyncio

from fastapi import FastAPI

app = FastAPI()


@app.get("/work")
async def work():
    await asyncio.sleep(2.0)
    return {"done": True}
