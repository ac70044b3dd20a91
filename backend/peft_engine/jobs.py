"""Fine-tuning jobs: a queue, one daemon worker thread, cooperative cancellation.

A job trains a LoRA adapter (peft) on a causal LM loaded from a local folder
(transformers, ``local_files_only``: nothing is ever fetched from a hub) on a few
texts given inline, then saves the adapter with ``save_pretrained`` under
``paths.adapter_dir(job_id)``. Jobs run one at a time, in submission order.

Every change of a job appends an event to ``Job.events`` (the SSE stream replays
them by index) and bumps ``Job.changed``. Cancellation sets a flag that the training
loop checks before every step; the worker is a daemon thread, so it never keeps the
process alive at exit.
"""

import queue
import threading
import time
import traceback
import uuid

from . import mlstack, paths

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "running", "completed", "failed", "cancelled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})


class Cancelled(Exception):
    """Raised inside the training loop when the job's cancel flag is set."""


class Job:
    def __init__(self, params):
        self.id = uuid.uuid4().hex[:16]
        self.params = params  # a dict, validated by the API layer
        self.state = QUEUED
        self.step = 0
        self.total_steps = int(params["steps"])
        self.loss = None
        self.error = None
        self.adapter_path = None
        self.created_at = time.time()
        self.cancel_requested = threading.Event()
        self.events = []
        self._lock = threading.Lock()
        self._emit("queued")

    def snapshot(self):
        with self._lock:
            return self._snapshot()

    def _snapshot(self):
        return {
            "id": self.id,
            "state": self.state,
            "step": self.step,
            "total_steps": self.total_steps,
            "loss": self.loss,
            "error": self.error,
            "adapter_path": self.adapter_path,
            "model_path": self.params["model_path"],
        }

    def _emit(self, kind):
        self.events.append({"event": kind, **self._snapshot()})

    def update(self, kind, **fields):
        with self._lock:
            for key, value in fields.items():
                setattr(self, key, value)
            self._emit(kind)

    @property
    def done(self):
        return self.state in TERMINAL


class JobManager:
    def __init__(self):
        self.jobs = {}
        self._queue = queue.Queue()
        self._worker = None
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def submit(self, params):
        job = Job(params)
        with self._lock:
            self.jobs[job.id] = job
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="peft-job-worker", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def get(self, job_id):
        return self.jobs.get(job_id)

    def cancel(self, job_id):
        job = self.jobs.get(job_id)
        if job is None:
            return None
        job.cancel_requested.set()
        if job.state == QUEUED:
            job.update("cancelled", state=CANCELLED)
        return job

    def shutdown(self):
        """Cancel every job that has not finished (called on SIGTERM/SIGINT)."""
        self.stopping.set()
        for job in list(self.jobs.values()):
            if not job.done:
                self.cancel(job.id)

    def wait_idle(self, timeout):
        """Give a cancelled running job up to ``timeout`` s to stop at its next step."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(job.state == RUNNING for job in self.jobs.values()):
                return True
            time.sleep(0.02)
        return False

    def _run(self):
        while not self.stopping.is_set():
            job = self._queue.get()
            if job.done:
                continue
            job.update("started", state=RUNNING)
            try:
                adapter = train(job)
                job.update("completed", state=COMPLETED, adapter_path=str(adapter))
            except Cancelled:
                job.update("cancelled", state=CANCELLED)
            except mlstack.MissingModule as exc:
                job.update("failed", state=FAILED, error=exc.detail()["detail"])
            except Exception as exc:  # report it on the job; the engine keeps serving
                traceback.print_exc()
                job.update("failed", state=FAILED, error=f"{type(exc).__name__}: {exc}")


def _check(job):
    if job.cancel_requested.is_set():
        raise Cancelled()


def train(job):
    """Run the LoRA fine-tune of ``job``; return the adapter folder."""
    stack = mlstack.ml_stack()
    torch, transformers, peft = stack["torch"], stack["transformers"], stack["peft"]
    p = job.params
    torch.manual_seed(p["seed"])
    dev = mlstack.device()
    device = torch.device("cpu" if dev == "none" else dev)

    tok = transformers.AutoTokenizer.from_pretrained(p["model_path"], local_files_only=True)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    _check(job)
    model = transformers.AutoModelForCausalLM.from_pretrained(p["model_path"], local_files_only=True)
    config = peft.LoraConfig(
        task_type=peft.TaskType.CAUSAL_LM,
        r=p["lora_r"],
        lora_alpha=p["lora_alpha"],
        lora_dropout=p["lora_dropout"],
        target_modules=p.get("target_modules"),
    )
    model = peft.get_peft_model(model, config).to(device)
    model.train()
    enc = tok(list(p["texts"]), padding=True, truncation=True, max_length=p["max_length"], return_tensors="pt")
    input_ids = enc["input_ids"].to(device)
    attention = enc["attention_mask"].to(device)
    labels = input_ids.masked_fill(attention == 0, -100)
    params = [t for t in model.parameters() if t.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=p["lr"])
    n, batch = input_ids.shape[0], min(p["batch_size"], input_ids.shape[0])

    for step in range(job.total_steps):
        _check(job)
        rows = torch.tensor([(step * batch + i) % n for i in range(batch)], device=device)
        out = model(input_ids=input_ids[rows], attention_mask=attention[rows], labels=labels[rows])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = float(out.loss.detach().cpu())
        if loss != loss:  # NaN
            raise FloatingPointError(f"loss became NaN at step {step + 1}")
        job.update("progress", step=step + 1, loss=loss)

    _check(job)
    out_dir = paths.adapter_dir(job.id)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    return out_dir
