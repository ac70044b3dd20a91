"""The HTTP API: /health, /system and the fine-tuning job endpoints.

Every /jobs endpoint first makes sure the ML stack imports (``mlstack.ml_stack``,
run in a worker thread so a slow first torch import never blocks the event loop);
when it does not, they answer 503 ``{"detail": ..., "missing_module": ...}`` while
the rest of the API keeps working.
"""

import asyncio
import json
from typing import List, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from . import mlstack, selftest
from .buildinfo import BUILD_INFO
from .jobs import JobManager


class JobRequest(BaseModel):
    model_path: str = Field(..., description="local folder with a causal LM and its tokenizer")
    texts: List[str] = Field(..., min_length=1, description="training texts")
    steps: int = Field(20, ge=1, le=100_000)
    lr: float = Field(2e-4, gt=0, le=1.0)
    lora_r: int = Field(8, ge=1, le=1024)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    max_length: int = Field(128, ge=2, le=32_768)
    batch_size: int = Field(4, ge=1, le=1024)
    seed: int = 0
    target_modules: Optional[List[str]] = Field(None, description="None: peft's default for the model type")


class MLStackMissing(Exception):
    def __init__(self, missing):
        self.missing = missing


async def require_ml_stack():
    try:
        await run_in_threadpool(mlstack.ml_stack)
    except mlstack.MissingModule as exc:
        raise MLStackMissing(exc) from exc


def create_app(manager=None):
    app = FastAPI(title="PEFT Studio engine", version=BUILD_INFO["version"])
    app.state.jobs = manager or JobManager()

    @app.exception_handler(MLStackMissing)
    async def _missing(request, exc):
        return JSONResponse(status_code=503, content=exc.missing.detail())

    @app.get("/health")
    async def health():
        return {
            "status": "ok",
            "version": BUILD_INFO["version"],
            "variant": BUILD_INFO["variant"],
            "device": await run_in_threadpool(mlstack.device),
        }

    @app.get("/system")
    async def system():
        return await run_in_threadpool(mlstack.system_info, BUILD_INFO)

    def _job_or_404(job_id):
        job = app.state.jobs.get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
        return job

    @app.post("/jobs", status_code=202)
    async def create_job(req: JobRequest):
        await require_ml_stack()
        if app.state.jobs.stopping.is_set():
            raise HTTPException(status_code=503, detail="the engine is shutting down")
        return app.state.jobs.submit(req.model_dump()).snapshot()

    selftest.register(app)  # POST /self-test, GET /self-test/{id}

    @app.get("/jobs")
    async def list_jobs():
        await require_ml_stack()
        return [job.snapshot() for job in app.state.jobs.jobs.values()]

    @app.get("/jobs/{job_id}")
    async def get_job(job_id: str):
        await require_ml_stack()
        return _job_or_404(job_id).snapshot()

    @app.delete("/jobs/{job_id}")
    async def cancel_job(job_id: str):
        await require_ml_stack()
        _job_or_404(job_id)
        return app.state.jobs.cancel(job_id).snapshot()

    @app.get("/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        await require_ml_stack()
        job = _job_or_404(job_id)
        start = request.headers.get("last-event-id")
        start = int(start) + 1 if start and start.isdigit() else 0
        stopping = app.state.jobs.stopping
        return StreamingResponse(
            _sse(job, start, stopping),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


async def _sse(job, index, stopping):
    """Server-sent events: every job event from ``index`` on, until the job ends."""
    while True:
        events = job.events
        while index < len(events):
            ev = events[index]
            yield f"id: {index}\nevent: {ev['event']}\ndata: {json.dumps(ev)}\n\n"
            index += 1
        if job.done and index >= len(job.events):
            return
        if stopping.is_set():
            return
        await asyncio.sleep(0.05)
