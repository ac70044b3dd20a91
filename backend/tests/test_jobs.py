"""The fine-tuning job API on a tiny random local GPT-2 (needs torch, transformers,
peft and tokenizers; skipped with the reason otherwise)."""

import json
import math

import httpx
import pytest

from conftest import SOURCE_CMD, Engine, engine_env, wait_for

for _mod in ("torch", "transformers", "peft", "tokenizers"):
    pytest.importorskip(_mod, reason=f"the job tests need {_mod} (not in the core dev venv; "
                                      "run backend/run-tests --full)")

from tiny_model import TEXTS, make_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture
def engine(data_dir):
    e = Engine(SOURCE_CMD, engine_env(PEFT_DATA_DIR=data_dir))
    yield e
    e.close()


def job_body(model, **params):
    body = {"model_path": str(model), "texts": TEXTS, "steps": 12, "lr": 0.02, "lora_r": 4, "lora_alpha": 8,
            "max_length": 32, "batch_size": 2, "seed": 0}
    body.update(params)
    return body


def wait_state(url, job_id, states, timeout=180):
    def check():
        snap = httpx.get(f"{url}/jobs/{job_id}", timeout=30).json()
        return snap if snap["state"] in states else None
    return wait_for(check, timeout, interval=0.1, what=f"job {job_id} to reach {states}")


def test_job_runs_to_completion_and_saves_adapter(engine, tiny_model, data_dir):
    r = httpx.post(engine.url + "/jobs", json=job_body(tiny_model), timeout=120)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and job["total_steps"] == 12
    done = wait_state(engine.url, job["id"], {"completed", "failed", "cancelled"})
    assert done["state"] == "completed", done
    assert done["step"] == done["total_steps"] == 12
    assert isinstance(done["loss"], float) and math.isfinite(done["loss"]) and done["loss"] > 0
    adapter = data_dir / "adapters" / job["id"]
    assert done["adapter_path"] == str(adapter)
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8

    # the adapter loads back onto the base model and changes its output
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        before = base(ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, str(adapter))
        after = tuned(ids).logits
    assert not torch.allclose(before, after)

    listed = httpx.get(engine.url + "/jobs", timeout=10).json()
    assert [j["id"] for j in listed] == [job["id"]]


def test_training_lowers_the_loss(engine, tiny_model):
    job = httpx.post(engine.url + "/jobs", json=job_body(tiny_model, steps=30, lr=0.05, batch_size=4),
                     timeout=120).json()
    wait_state(engine.url, job["id"], {"completed"})
    events = [json.loads(line[6:]) for line in _sse_lines(engine.url, job["id"]) if line.startswith("data: ")]
    losses = [e["loss"] for e in events if e["event"] == "progress"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses


def _sse_lines(url, job_id):
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return list(r.iter_lines())


def test_sse_streams_progress_until_the_end(engine, tiny_model):
    job = httpx.post(engine.url + "/jobs", json=job_body(tiny_model, steps=8), timeout=120).json()
    lines = _sse_lines(engine.url, job["id"])  # returns only once the job has ended
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "queued" and kinds[-1] == "completed"
    steps = [e["step"] for e in events if e["event"] == "progress"]
    assert steps == list(range(1, 9))
    ids = [int(line[4:]) for line in lines if line.startswith("id: ")]
    assert ids == list(range(len(events)))
    # Last-Event-ID resumes after the given event
    with httpx.stream("GET", f"{engine.url}/jobs/{job['id']}/events", headers={"Last-Event-ID": "3"},
                      timeout=60) as r:
        resumed = [int(line[4:]) for line in r.iter_lines() if line.startswith("id: ")]
    assert resumed == list(range(4, len(events)))


def test_cancel_stops_a_running_job(engine, tiny_model, data_dir):
    job = httpx.post(engine.url + "/jobs", json=job_body(tiny_model, steps=100_000), timeout=120).json()
    wait_for(lambda: httpx.get(f"{engine.url}/jobs/{job['id']}", timeout=30).json()["step"] >= 2, 120,
             what="the job to make progress")
    r = httpx.delete(f"{engine.url}/jobs/{job['id']}", timeout=30)
    assert r.status_code == 200
    done = wait_state(engine.url, job["id"], {"cancelled", "completed", "failed"}, timeout=30)
    assert done["state"] == "cancelled" and done["step"] < 100_000
    assert done["adapter_path"] is None
    assert not (data_dir / "adapters" / job["id"]).exists()


def test_queued_job_cancelled_before_it_runs(engine, tiny_model):
    first = httpx.post(engine.url + "/jobs", json=job_body(tiny_model, steps=100_000), timeout=120).json()
    second = httpx.post(engine.url + "/jobs", json=job_body(tiny_model), timeout=120).json()
    assert httpx.get(f"{engine.url}/jobs/{second['id']}", timeout=30).json()["state"] == "queued"
    assert httpx.delete(f"{engine.url}/jobs/{second['id']}", timeout=30).json()["state"] == "cancelled"
    httpx.delete(f"{engine.url}/jobs/{first['id']}", timeout=30)
    wait_state(engine.url, first["id"], {"cancelled"}, timeout=30)
    assert httpx.get(f"{engine.url}/jobs/{second['id']}", timeout=30).json()["step"] == 0


def test_bad_model_path_fails_the_job(engine, tmp_path):
    job = httpx.post(engine.url + "/jobs", json=job_body(tmp_path / "no-such-model"), timeout=120).json()
    done = wait_state(engine.url, job["id"], {"completed", "failed", "cancelled"}, timeout=60)
    assert done["state"] == "failed" and done["error"]


def test_validation_and_unknown_jobs(engine, tiny_model):
    assert httpx.post(engine.url + "/jobs", json=job_body(tiny_model, texts=[]), timeout=60).status_code == 422
    assert httpx.post(engine.url + "/jobs", json=job_body(tiny_model, steps=0), timeout=60).status_code == 422
    assert httpx.get(engine.url + "/jobs/nope", timeout=60).status_code == 404
    assert httpx.delete(engine.url + "/jobs/nope", timeout=60).status_code == 404


def test_sigterm_during_training_exits_fast(engine, tiny_model):
    job = httpx.post(engine.url + "/jobs", json=job_body(tiny_model, steps=100_000), timeout=120).json()
    wait_for(lambda: httpx.get(f"{engine.url}/jobs/{job['id']}", timeout=30).json()["step"] >= 1, 120,
             what="the job to start training")
    # keep an SSE stream open too: it must not hold the shutdown up
    with httpx.stream("GET", f"{engine.url}/jobs/{job['id']}/events", timeout=30) as r:
        assert r.status_code == 200
        elapsed, status, _ = engine.stop()
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert status == 0
