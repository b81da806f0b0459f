// examples/go/worker.go: an execguard worker in plain SQL, with database/sql and lib/pq.
// It claims one execution at a time, sends its prompt to an OpenAI-compatible
// server while a heartbeat keeps the lease, and records the outcome; any number
// of workers, in any language, share the queue. Settings: examples/README.md.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"
)

type claim struct {
	ID, Token, Attempt int64
	Region             string
	Payload            struct {
		ModelID string         `json:"model_id"`
		Prompt  string         `json:"prompt"`
		Params  map[string]any `json:"params"`
	}
}

// failure is what fail_execution is told; a NULL retryAfter leaves the wait to execguard's backoff.
type failure struct {
	error      string
	retryable  bool
	retryAfter sql.NullString
}

var (
	db       *sql.DB
	worker   = env("EXECGUARD_WORKER_ID", fmt.Sprintf("go-%d", os.Getpid()))
	leaseS   = seconds("EXECGUARD_LEASE_SECONDS", 30)
	lease    = fmt.Sprintf("%g seconds", leaseS.Seconds()) // sent as text, cast to interval in SQL
	grace    = seconds("EXECGUARD_GRACE_SECONDS", 10)
	exitIdle = os.Getenv("EXECGUARD_EXIT_WHEN_IDLE") == "1" || (len(os.Args) > 1 && os.Args[1] == "--exit-when-idle")
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func seconds(name string, def float64) time.Duration {
	s, err := strconv.ParseFloat(env(name, fmt.Sprint(def)), 64)
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	return time.Duration(s * float64(time.Second))
}

// list is a comma-separated filter as a text[]; empty is NULL, which means any.
func list(name string) any {
	if v := strings.FieldsFunc(os.Getenv(name), func(r rune) bool { return r == ',' || r == ' ' }); len(v) > 0 {
		return pq.Array(v)
	}
	return nil // an empty array would match nothing
}

// one scans one row, retrying while the database is unreachable (an error not
// from PostgreSQL): the pool opens a new connection, and the fencing token
// makes sending a write again safe.
func one(query string, args []any, dest ...any) (err error) {
	for attempt := 1; attempt <= 5; attempt++ {
		var pqErr *pq.Error
		if err = db.QueryRow(query, args...).Scan(dest...); err == nil || err == sql.ErrNoRows || errors.As(err, &pqErr) {
			return err
		}
		log.Printf("database unreachable, retrying error=%v", err)
		time.Sleep(time.Duration(attempt) * time.Second)
	}
	return err
}

func callModel(ctx context.Context, c *claim) (map[string]any, *failure) {
	body := map[string]any{"model": c.Payload.ModelID, "stream": false,
		"messages": []map[string]string{{"role": "user", "content": c.Payload.Prompt}}}
	for k, v := range c.Payload.Params {
		body[k] = v
	}
	b, _ := json.Marshal(body)
	base := strings.TrimRight(strings.ReplaceAll(os.Getenv("EXECGUARD_EXAMPLE_BASE_URL"), "{region}", c.Region), "/")
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	// One key per grant: a provider that deduplicates sees a retry as new.
	req.Header.Set("Idempotency-Key", fmt.Sprintf("execguard-%d-%d", c.ID, c.Token))
	req.Header.Set("X-Execguard-Worker", worker)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		b, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, &failure{"timeout: no answer in 120 s", true, sql.NullString{}}
	} else if err != nil {
		return nil, &failure{"network: " + err.Error(), true, sql.NullString{}}
	}
	var answer struct {
		Choices []struct {
			Message      struct{ Content *string }
			FinishReason string `json:"finish_reason"`
		}
		Usage json.RawMessage
	}
	if resp.StatusCode == 200 {
		if json.Unmarshal(b, &answer) != nil || len(answer.Choices) == 0 || answer.Choices[0].Message.Content == nil {
			return nil, &failure{fmt.Sprintf("permanent: malformed response: %.200s", b), false, sql.NullString{}}
		}
		text := strings.ReplaceAll(*answer.Choices[0].Message.Content, "\x00", "\uFFFD") // jsonb cannot hold U+0000
		return map[string]any{"text": text, "finish_reason": answer.Choices[0].FinishReason, "usage": answer.Usage, "worker": worker}, nil
	}
	class := "permanent" // the runner's classes: retry all but this one
	switch {
	case resp.StatusCode == 429:
		class = "rate_limit"
	case resp.StatusCode == 408:
		class = "timeout"
	case resp.StatusCode >= 500:
		class = "server_error"
	}
	f := &failure{fmt.Sprintf("%s: HTTP %d: %.300s", class, resp.StatusCode, b), class != "permanent", sql.NullString{}}
	// A provider's Retry-After in seconds wins (at most a day, as the runner's:
	// fail_execution refuses over 30 days); else execguard's backoff (NULL).
	n, err := strconv.ParseUint(resp.Header.Get("Retry-After"), 10, 64) // too large: ErrRange, and the largest
	if f.retryable && (err == nil || errors.Is(err, strconv.ErrRange)) {
		if n > 86400 {
			n = 86400
		}
		f.retryAfter = sql.NullString{String: fmt.Sprintf("%d seconds", n), Valid: true}
	}
	return nil, f
}

// execute runs one claim. shutdown closes on SIGTERM: the call then has the
// grace period to finish before it is aborted and the claim released.
func execute(shutdown <-chan struct{}, c *claim) {
	log.Printf("claimed id=%d token=%d attempt=%d model=%s region=%s", c.ID, c.Token, c.Attempt, c.Payload.ModelID, c.Region)
	ctx, abort := context.WithTimeout(context.Background(), 120*time.Second)
	defer abort()
	why, done, beatDone := make(chan string, 1), make(chan struct{}), make(chan struct{})
	// The heartbeat renews the lease every lease/3, on whatever pool connection
	// is free, and aborts the call when execguard says stop.
	go func() {
		defer close(beatDone)
		ticker := time.NewTicker(leaseS / 3)
		defer ticker.Stop()
		var graceOver <-chan time.Time
		for {
			var ok bool
			var state sql.NullString
			select {
			case <-done:
				return
			case <-shutdown:
				shutdown, graceOver = nil, time.After(grace)
			case <-graceOver:
				why <- "shutdown"
				abort()
				return
			case <-ticker.C:
				if err := one(`SELECT execguard.heartbeat($1, $2, $3::interval)`, []any{c.ID, c.Token, lease}, &ok); err != nil {
					log.Printf("heartbeat failed id=%d error=%v", c.ID, err) // the lease outlives two misses
				} else if !ok { // false means stop; execution_state says why (cancelled, stale, ...)
					_ = one(`SELECT coalesce(execguard.execution_state($1, $2), 'gone')`, []any{c.ID, c.Token}, &state)
					why <- state.String
					abort()
					return
				}
			}
		}
	}()
	result, fail := callModel(ctx, c)
	close(done)
	<-beatDone // no heartbeat after the write below
	reason := ""
	if len(why) > 0 {
		reason = <-why
	}
	var ok bool
	var outcome string
	switch {
	case reason == "shutdown" && result == nil: // gives the attempt back to the next worker
		_ = one(`SELECT execguard.release_execution($1, $2)`, []any{c.ID, c.Token}, &ok)
		log.Printf("released id=%d accepted=%v", c.ID, ok)
	case reason != "" && reason != "shutdown": // cancelled or taken over: write nothing
		log.Printf("stopped id=%d reason=%s", c.ID, reason)
	case result != nil:
		res, _ := json.Marshal(result)
		err := one(`SELECT execguard.complete_execution($1, $2, $3)`, []any{c.ID, c.Token, string(res)}, &ok)
		log.Printf("completed id=%d token=%d accepted=%v error=%v", c.ID, c.Token, ok, err)
	default:
		err := one(`SELECT execguard.fail_execution($1, $2, $3, retryable => $4, retry_after => $5::interval)`,
			[]any{c.ID, c.Token, fail.error, fail.retryable, fail.retryAfter}, &outcome)
		log.Printf("failed id=%d outcome=%s error=%v reason=%.80s", c.ID, outcome, err, fail.error)
	}
}

func main() {
	log.SetFlags(0)
	log.SetPrefix(worker + ": ")
	var err error
	if db, err = sql.Open("postgres", os.Getenv("EXECGUARD_DSN")); err != nil { // a pool; "" means the PG* variables
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	regions, models := list("EXECGUARD_REGIONS"), list("EXECGUARD_MODELS")
	for ctx.Err() == nil {
		var c claim
		var payload []byte
		var left int64
		// track_owner => false: a pooled connection is not this worker's identity
		// (database/sql closes and swaps connections at will), so rescue must rely on the lease.
		err := one(`SELECT execution_id, fencing_token, attempt, region, payload FROM execguard.claim_next($1,
		    max_claims => 1, lease => $2::interval, regions => $3::text[], models => $4::text[], track_owner => false)`,
			[]any{worker, lease, regions, models}, &c.ID, &c.Token, &c.Attempt, &c.Region, &payload)
		if err == nil {
			if err = json.Unmarshal(payload, &c.Payload); err != nil {
				log.Fatalf("payload of %d: %v", c.ID, err) // submit_job wrote it: cannot happen
			}
			execute(ctx.Done(), &c)
			continue
		} else if err != sql.ErrNoRows {
			log.Fatalf("claim_next failed: %v", err)
		}
		// Nothing due. Pending rows may still be backing off, and running ones may
		// come back if their worker dies: idle only when neither is left.
		err = one(`SELECT coalesce(sum(executions), 0) FROM execguard.queue_summary()
		    WHERE status IN ('pending', 'running')`, nil, &left)
		if err != nil {
			log.Fatalf("queue_summary failed: %v", err)
		} else if exitIdle && left == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	log.Printf("exiting")
}
