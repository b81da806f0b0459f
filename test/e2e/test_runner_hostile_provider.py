"""test/e2e/test_runner_hostile_provider.py: bytes and JSON from a broken or
malicious inference provider (issue 16).

What the provider sends never takes the runner down, never reaches a log
line or the database as invalid UTF-8 or NUL, and never makes a paid call
run again by accident: the row ends completed (with what was altered
recorded in result.altered) or failed with the provider's error in it.
The runner runs with both log formats where the format once made a
difference (logfmt crashed, JSON lost the provider's error).
"""
import json
import re

import pytest

import conftest
from conftest import spec, wait_until

LOG_FORMATS = ["logfmt", "json"]
BODY_EXCERPT = 300  # bytes of an error body the runner quotes (runner/inference.cpp)
DEEP = 1000000      # nesting levels: far beyond what a recursive walk survives


def _bound_port_any_format(self):
    """conftest.Runner._bound_port for logfmt and JSON log lines."""
    if self.proc.poll() is not None:
        pytest.fail("runner exited with %s:\n%s" % (self.proc.returncode, self.log()))
    m = (re.search(r"event=metrics_listening .*port=(\d+)", self.log())
         or re.search(r'"event":"metrics_listening".*"port":(\d+)', self.log()))
    return m and m.group(1)


@pytest.fixture
def start(start_runner, monkeypatch):
    """start(log_format, region, *extra) -> a runner logging in that format."""
    monkeypatch.setattr(conftest.Runner, "_bound_port", _bound_port_any_format)

    def run(log_format, region, *extra):
        return start_runner([region], "--log-format", log_format, *extra)

    return run


def assert_alive_and_clean(runner):
    """Still running, no fatal event, and every log line is valid UTF-8."""
    assert runner.proc.poll() is None, runner.log()
    with open(runner.log_path, "rb") as f:
        raw = f.read()
    raw.decode("utf-8")  # raises on an invalid byte
    assert b"fatal" not in raw, raw.decode()


def final_row(db, job_id, status):
    wait_until(lambda: db.status_counts(job_id).get(status) == 1, what="the execution to be " + status)
    return db.executions(job_id)[0]


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_a_500_with_an_invalid_utf8_body_writes_the_providers_error_with_u_fffd(
        db, fake, start, job_id, region_prefix, log_format):
    # Was: logfmt -> event=fatal (type_error.316) and exit 1 in a loop; JSON
    # -> fail_execution refused (22021) and the row failed as "lease lost".
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="invalid_utf8_500")
    runner = start(log_format, region)
    db.submit_job(spec(job_id, region, 1, max_attempts=1))
    row = final_row(db, job_id, "failed")
    assert row["error"] == 'server_error: HTTP 500: {"error":{"message":"internal error \ufffd near byte 20"}}'
    assert fake.count() == 1
    assert_alive_and_clean(runner)


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_a_multibyte_character_at_the_error_excerpts_cut_is_left_out_whole(
        db, fake, start, job_id, region_prefix, log_format):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="multibyte_at_cut", cut_at=BODY_EXCERPT)
    runner = start(log_format, region)
    db.submit_job(spec(job_id, region, 1, max_attempts=1))
    row = final_row(db, job_id, "failed")
    # U+20AC starts at byte 299 and would end at 302: it is not cut in half.
    assert row["error"] == "server_error: HTTP 500: " + "e" * (BODY_EXCERPT - 1) + "..."
    assert_alive_and_clean(runner)


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_an_invalid_utf8_request_id_header_is_stored_with_u_fffd_and_marked(
        db, fake, start, job_id, region_prefix, log_format):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="invalid_utf8_request_id")
    runner = start(log_format, region)
    db.submit_job(spec(job_id, region, 1))
    row = final_row(db, job_id, "completed")
    assert row["result"]["provider_request_id"] == "req-\ufffd"
    assert "provider_request_id" in row["result"]["altered"]
    assert row["result"]["text"].startswith("fake answer to: ")
    assert_alive_and_clean(runner)


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_invalid_utf8_in_the_model_output_is_stored_with_u_fffd_and_marked(
        db, fake, start, job_id, region_prefix, log_format):
    # A generation cut inside a multibyte token is a real provider bug; the
    # call was paid for, so the answer is kept, repaired and marked.
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="invalid_utf8_content")
    runner = start(log_format, region)
    db.submit_job(spec(job_id, region, 1))
    row = final_row(db, job_id, "completed")
    assert row["result"]["text"] == "bad byte \ufffd in: " + row["prompt"]
    assert "1 invalid UTF-8" in row["result"]["altered"]["response"]
    assert fake.count() == 1
    assert_alive_and_clean(runner)


def test_nul_in_the_model_output_is_stored_as_u_fffd_and_marked_never_run_again(
        db, fake, start_runner, job_id, region_prefix):
    # Was: complete_executions refused (22P05), the result dropped as stale
    # and the unit run again after the lease: a paid call wasted, each time.
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="nul_content")
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1))
    row = final_row(db, job_id, "completed")
    assert row["result"]["text"] == "before\ufffdafter"
    assert row["result"]["altered"] == {"text": "1 NUL character replaced by U+FFFD"}
    assert row["attempt"] == 1 and fake.count() == 1
    assert runner.metric('execguard_runner_executions_finished_total{result="stale"}') == 0
    assert_alive_and_clean(runner)


def test_nul_in_other_answer_fields_is_replaced_and_marked(db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    answer = {"id": "x", "model": "m\u0000", "usage": {"total_tokens": 2, "note\u0000": "a\u0000b"},
              "choices": [{"finish_reason": "stop\u0000", "message": {"content": "fine"}}]}
    fake.control(region=region, mode="raw", body=json.dumps(answer))
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1))
    result = final_row(db, job_id, "completed")["result"]
    assert result["text"] == "fine"
    assert result["model"] == "m\ufffd" and result["finish_reason"] == "stop\ufffd"
    assert result["usage"] == {"total_tokens": 2, "note\ufffd": "a\ufffdb"}
    assert set(result["altered"]) == {"model", "finish_reason", "usage"}
    assert fake.count() == 1
    assert_alive_and_clean(runner)


def test_a_response_over_the_size_cap_fails_without_a_retry(db, fake, start_runner, job_id, region_prefix):
    # The model did the work; sending the request again would pay for it
    # twice and get the same answer. Was: `network`, retried.
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="oversized")
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1, max_attempts=3))
    row = final_row(db, job_id, "failed")
    assert row["attempt"] == 1 and fake.count() == 1
    assert row["error"].startswith("response_too_large: ")
    assert runner.metric('execguard_runner_inference_errors_total{class="response_too_large",region="%s"}'
                         % region) == 1
    assert_alive_and_clean(runner)


def test_an_error_status_with_an_oversized_body_keeps_its_status_class(db, fake, start_runner, job_id,
                                                                       region_prefix):
    # A 500 did no work: however long its body, it stays a retryable
    # server_error.
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="raw", status=500, body="x" * (17 * 1024 * 1024), count=1)
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1, max_attempts=2))
    row = final_row(db, job_id, "completed")
    assert row["attempt"] == 2 and fake.count() == 2
    assert runner.metric('execguard_runner_inference_errors_total{class="server_error",region="%s"}' % region) == 1
    assert_alive_and_clean(runner)


DEEP_ARRAY = "[" * DEEP + "]" * DEEP


@pytest.mark.parametrize("field", ["usage", "model", "finish_reason"])
def test_deeply_nested_json_in_an_answer_field_is_dropped_and_marked(db, fake, start_runner, job_id,
                                                                     region_prefix, field):
    # Was: a recursive copy of the value overflowed the stack (SIGSEGV).
    region = region_prefix + "-us-east"
    choice = {"message": {"content": "fine"}, "finish_reason": "stop"}
    answer = {"id": "x", "model": "m", "usage": {"total_tokens": 2}, "choices": [choice]}
    body = json.dumps(answer)
    if field == "finish_reason":
        body = body.replace('"finish_reason": "stop"', '"finish_reason": ' + DEEP_ARRAY)
    else:
        body = body.replace('"%s": %s' % (field, json.dumps(answer[field])), '"%s": %s' % (field, DEEP_ARRAY))
    assert DEEP_ARRAY in body
    fake.control(region=region, mode="raw", body=body)
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1))
    result = final_row(db, job_id, "completed")["result"]
    assert result["text"] == "fine" and result[field] is None
    assert "nested deeper than" in result["altered"][field]
    assert_alive_and_clean(runner)


def test_a_deeply_nested_error_body_fails_the_attempt_with_a_readable_error(db, fake, start_runner, job_id,
                                                                           region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="raw", body='{"error": %s}' % DEEP_ARRAY)
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1, max_attempts=1))
    row = final_row(db, job_id, "failed")
    assert row["error"].startswith("server_error: HTTP 200 error body: ")
    assert "nested deeper than" in row["error"]
    assert_alive_and_clean(runner)


@pytest.mark.parametrize("answer, message", [
    ({"choices": {"0": {"message": {"content": "x"}}}}, "no choices"),
    ({"choices": [{"message": {"content": 42}}]}, "no message content"),
    ({"choices": [{"message": "x"}]}, "choices[0].message missing"),
    ({"choices": ["x"]}, "choices[0].message missing"),
    ([1, 2, 3], "not a JSON object"),
])
def test_answers_of_the_wrong_shape_fail_permanently_with_a_clear_error(db, fake, start_runner, job_id,
                                                                        region_prefix, answer, message):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="raw", body=json.dumps(answer))
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1, max_attempts=3))
    row = final_row(db, job_id, "failed")
    assert row["attempt"] == 1 and fake.count() == 1
    assert row["error"].startswith("permanent: malformed response: ") and message in row["error"], row["error"]
    assert_alive_and_clean(runner)


def test_huge_usage_numbers_are_stored(db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    body = ('{"id": "x", "choices": [{"message": {"content": "fine"}}], '
            '"usage": {"prompt_tokens": 123456789012345678901234567890, "total_tokens": -1.5e308}}')
    fake.control(region=region, mode="raw", body=body)
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1))
    result = final_row(db, job_id, "completed")["result"]
    # jsonb keeps them as numeric; a double's precision is what was parsed.
    assert float(result["usage"]["prompt_tokens"]) == pytest.approx(1.2345678901234568e29)
    assert float(result["usage"]["total_tokens"]) == -1.5e308
    assert "altered" not in result
    assert_alive_and_clean(runner)


def test_an_unrepresentable_number_fails_with_the_parsers_reason(db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    body = '{"id": "x", "choices": [{"message": {"content": "fine"}}], "usage": {"total_tokens": 1e400}}'
    fake.control(region=region, mode="raw", body=body)
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1, max_attempts=1))
    row = final_row(db, job_id, "failed")
    assert row["error"].startswith("permanent: malformed response: ")
    assert "number overflow" in row["error"], row["error"]
    assert_alive_and_clean(runner)


def test_a_huge_retry_after_is_capped_and_the_providers_error_recorded(db, fake, start_runner, job_id,
                                                                       region_prefix):
    # Was: fail_execution refused ("interval field value out of range"),
    # the provider's error lost, the row left running until its lease.
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="429", retry_after="99999999999999999999")
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1, max_attempts=3))
    row = wait_until(lambda: next((r for r in db.executions(job_id) if r["status"] == "pending" and r["attempt"] == 1),
                                  None), what="the retry to be scheduled")
    assert row["error"].startswith("rate_limit: HTTP 429: ")
    due_in = db.query("SELECT extract(epoch FROM not_before - now()) AS s FROM execguard.executions "
                      "WHERE job_id = %s", (job_id,))[0]["s"]
    assert 86000 < due_in <= 86400
    assert fake.count() == 1
    assert_alive_and_clean(runner)
