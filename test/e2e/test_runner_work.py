"""test/e2e/test_runner_work.py: the runner turns claims into exactly one
model call per unit of work, however many entries, submissions and runners."""
import collections

from conftest import wait_until


def test_reference_incident_four_model_entries_make_exactly_two_model_calls(db, fake, start_runner,
                                                                            job_id, region_prefix):
    region = region_prefix + "-us-east"
    # The field's job: the two models listed twice (top level and metadata),
    # which gave 4 rows and 4 model calls in the system this replaces.
    spec = {"id": job_id,
            "benchmark": {"input": {"type": "prompt", "data": {"prompt": "What is 2+2?"}}},
            "constraints": {"regions": [region]},
            "models": ["qwen2.5-1.5b", "llama3.2-1b"],
            "metadata": {"models": ["qwen2.5-1.5b", "llama3.2-1b"]},
            "questions": ["What is 2+2?"]}
    first = db.submit_job(spec)
    assert first["executions_created"] == 2
    assert first["duplicates_removed"] == 2
    # The same job delivered again (queue redelivery) creates nothing.
    again = db.submit_job(spec)
    assert again["executions_created"] == 0 and again["executions_existing"] == 2

    start_runner([region])
    start_runner([region])
    wait_until(lambda: db.status_counts(job_id).get("completed") == 2, what="2 completed executions")

    calls = fake.requests()
    assert len(calls) == 2
    assert sorted(c["model"] for c in calls) == ["llama3.2-1b", "qwen2.5-1.5b"]
    assert all(c["prompt"] == "What is 2+2?" and c["region"] == region for c in calls)
    rows = db.executions(job_id)
    assert len(rows) == 2
    for row in rows:
        assert row["result"]["text"].startswith("fake answer to:")
        assert row["result"]["usage"]["total_tokens"] > 0
        assert row["result"]["provider_request_id"]
        assert "latency_ms" in row["result"]
    # Nothing else is due, so the count stays at 2 however long the runners live.
    assert fake.count() == 2


def test_three_runners_two_models_three_regions_four_questions_make_exactly_24_calls(
        db, fake, start_runner, job_id, region_prefix):
    regions = [region_prefix + r for r in ("-us-east", "-eu-west", "-ap-south")]
    questions = ["q%d: what is %d+%d?" % (i, i, i) for i in range(4)]
    fake.control(latency=0.05)
    runners = [start_runner(regions, "--concurrency", "4") for _ in range(3)]
    created = db.submit_job({"id": job_id, "models": ["qwen2.5-1.5b", "llama3.2-1b"],
                             "constraints": {"regions": regions}, "questions": questions})
    assert created["executions_created"] == 24

    wait_until(lambda: db.status_counts(job_id).get("completed") == 24, what="24 completed executions")
    calls = fake.requests()
    assert len(calls) == 24
    keys = collections.Counter((c["region"], c["model"], c["prompt"]) for c in calls)
    assert len(keys) == 24 and set(keys.values()) == {1}
    # Each request was sent once: its idempotency key (execution, token) is unique.
    assert len({c["idempotency_key"] for c in calls}) == 24
    workers = {r.worker_id for r in runners}
    assert {row["result"]["worker"] for row in db.executions(job_id)} <= workers
    assert sum(r.metric('execguard_runner_executions_finished_total{result="completed"}') for r in runners) == 24


def test_http_200_error_body_is_a_failure_and_the_retry_is_a_new_attempt(db, fake, start_runner,
                                                                       job_id, region_prefix):
    region = region_prefix + "-us-east"
    # The field's provider error: HTTP 200 carrying "HTTP 429 ... spend limit reached".
    fake.control(region=region, mode="error_body", count=1)
    runner = start_runner([region])
    db.submit_job({"id": job_id, "models": ["m1"], "constraints": {"regions": [region]},
                   "questions": ["hello?"]})
    wait_until(lambda: db.status_counts(job_id).get("completed") == 1, what="completion after retry")

    calls = fake.requests()
    assert [c["mode"] for c in calls] == ["error_body", "ok"]
    # Two different attempts (new fencing token), not a re-send of one request.
    assert calls[0]["idempotency_key"] != calls[1]["idempotency_key"]
    row = db.executions(job_id)[0]
    assert row["attempt"] == 2
    assert runner.metric('execguard_runner_inference_errors_total{class="rate_limit",region="%s"}' % region) == 1
    assert runner.metric('execguard_runner_executions_finished_total{result="retry_scheduled"}') == 1


def test_malformed_200_is_a_permanent_failure_and_is_not_retried(db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="malformed")
    start_runner([region])
    db.submit_job({"id": job_id, "models": ["m1"], "constraints": {"regions": [region]},
                   "questions": ["hello?"]})
    wait_until(lambda: db.status_counts(job_id).get("failed") == 1, what="permanent failure")
    row = db.executions(job_id)[0]
    assert row["attempt"] == 1 and "malformed" in row["error"]
    assert fake.count() == 1
