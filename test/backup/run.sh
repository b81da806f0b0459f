#!/usr/bin/env bash
# test/backup/run.sh: pg_dump and pg_restore of a database with execguard
# keep every job, execution and queue row, and the restored database goes
# on where the old one stopped: new ids do not collide, the running claim
# is still held, a completed key is not run again. Uses the cluster named
# by PG* (scripts/test.sh's), or starts a throwaway one.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PGPORT:-}" ]; then
    dir=$root/.run/backup-$$
    "$root/scripts/pgcluster.sh" start "$dir" >/dev/null
    trap '"$root/scripts/pgcluster.sh" destroy "$dir"' EXIT
    # shellcheck disable=SC1091
    . "$dir/env"
fi
src=eg_backup_src_$$ dst=eg_backup_dst_$$ dump=$(mktemp)
cleanup_dbs() { psql -Xq -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" >/dev/null 2>&1 || true; rm -f "$dump"; }
trap 'cleanup_dbs; [ -n "${dir:-}" ] && "$root/scripts/pgcluster.sh" destroy "$dir"' EXIT

fails=0
check() { # description expected actual
    if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1: expected [$2], got [$3]"; fails=$((fails + 1)); fi
}
q() { psql -XAtq -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

psql -Xq -c "CREATE DATABASE $src" -c "CREATE DATABASE $dst"
q "$src" "CREATE EXTENSION execguard" >/dev/null
q "$src" "INSERT INTO execguard.regions VALUES ('r', 'the one region')"
q "$src" "SELECT count(*) FROM execguard.submit_job('{\"id\": \"bk-1\", \"models\": [\"m\"], \"regions\": [\"r\"], \"questions\": [\"q1\", \"q2\", \"q3\", \"q4\"]}')" >/dev/null
# q1 completed, q2 running, q3 failed, q4 pending; a cancelled job.
q "$src" "SELECT execguard.complete_execution(execution_id, fencing_token, '{\"answer\": 1}') FROM execguard.claim_execution('bk-1', 'm', 'r', 'q1')" >/dev/null
token=$(q "$src" "SELECT fencing_token FROM execguard.claim_execution('bk-1', 'm', 'r', 'q2', 'w', lease => '1 hour')")
q "$src" "SELECT execguard.fail_execution(execution_id, fencing_token, 'bad', retryable => false) FROM execguard.claim_execution('bk-1', 'm', 'r', 'q3')" >/dev/null
q "$src" "SELECT execguard.cancel_job('bk-gone')" >/dev/null
state="SELECT string_agg(execution_id || ':' || question_id || ':' || status || ':' || fencing_token || ':' || coalesce(result::text, '-'), ' ' ORDER BY execution_id) FROM execguard.executions"
queue="SELECT string_agg(execution_id || ':' || (lease_expires_at IS NULL), ' ' ORDER BY execution_id) FROM execguard.queue"
jobs="SELECT string_agg(job_id || ':' || (spec IS NULL) || ':' || (cancelled_at IS NULL), ' ' ORDER BY job_id) FROM execguard.jobs"
before_state=$(q "$src" "$state") before_queue=$(q "$src" "$queue") before_jobs=$(q "$src" "$jobs")

pg_dump -Fc -f "$dump" "$src"
pg_restore --exit-on-error -d "$dst" "$dump"

check "executions restored" "$before_state" "$(q "$dst" "$state")"
check "queue restored" "$before_queue" "$(q "$dst" "$queue")"
check "jobs and tombstones restored" "$before_jobs" "$(q "$dst" "$jobs")"
check "regions restored" "r" "$(q "$dst" "SELECT string_agg(name, ' ') FROM execguard.regions")"
check "extension version" "$(q "$src" "SELECT extversion FROM pg_extension WHERE extname = 'execguard'")" \
    "$(q "$dst" "SELECT extversion FROM pg_extension WHERE extname = 'execguard'")"
check "a completed key is not run again" "completed" "$(q "$dst" "SELECT outcome FROM execguard.claim_execution('bk-1', 'm', 'r', 'q1')")"
check "the running claim is still held" "running" "$(q "$dst" "SELECT outcome FROM execguard.claim_execution('bk-1', 'm', 'r', 'q2')")"
check "its holder can still complete it" "t" "$(q "$dst" "SELECT execguard.complete_execution(2, $token, '{\"answer\": 2}')")"
check "the pending unit is claimed once" "q4" "$(q "$dst" "SELECT question_id FROM execguard.claim_next('w2', 10)")"
q "$dst" "SELECT executions_created FROM execguard.submit_job('{\"id\": \"bk-2\", \"models\": [\"m\"], \"regions\": [\"r\"], \"questions\": [\"q1\"]}')" >/dev/null
check "new ids continue after the restored ones" "5" "$(q "$dst" "SELECT execution_id FROM execguard.executions WHERE job_id = 'bk-2'")"
late=$(psql -XAtq -d "$dst" -c "SELECT * FROM execguard.submit_job('{\"id\": \"bk-gone\", \"models\": [\"m\"], \"regions\": [\"r\"], \"questions\": [\"q1\"]}')" 2>&1 || true)
check "the tombstone refuses a late submit" 'ERROR:  job "bk-gone" was cancelled before it was submitted' "$(echo "$late" | head -n 1)"

echo "$((11 - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
