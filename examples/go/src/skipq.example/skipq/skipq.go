// Package skipq talks to a skipq queue from Go through its SQL functions:
// enqueue_job to produce, and the fenced claim_jobs / heartbeat_job /
// complete_job / fail_job to work. A TypeScript worker or producer on the same
// database shares the queue: same rows, same claim policy, same fence.
package skipq

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v4/pgxpool"
)

// Outcome is what a fenced call did to one attempt (the SQL functions' answer).
type Outcome string

// The outcomes of complete_job, fail_job and heartbeat_job.
const (
	Completed        Outcome = "completed"
	RetryScheduled   Outcome = "retry_scheduled"
	Failed           Outcome = "failed"
	Extended         Outcome = "extended"
	AlreadyCompleted Outcome = "already_completed"
	AlreadyFailed    Outcome = "already_failed"
	// LeaseLost: the attempt is no longer this worker's (its lease ran out and
	// the job was rescued or claimed again); nothing was written.
	LeaseLost Outcome = "lease_lost"
	Cancelled Outcome = "cancelled"
	NotFound  Outcome = "not_found"
)

// Client wraps a pgx pool on the skipq database.
type Client struct {
	Pool *pgxpool.Pool
}

// Connect opens a pool on databaseURL.
func Connect(ctx context.Context, databaseURL string) (*Client, error) {
	pool, err := pgxpool.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("skipq: connect: %w", err)
	}
	return &Client{Pool: pool}, nil
}

// Close closes the pool.
func (c *Client) Close() { c.Pool.Close() }

// EnqueueOptions are enqueue_job's options; zero values take the job type's
// defaults from job_types (the registry the skipq server recorded).
type EnqueueOptions struct {
	Queue          string     `json:"queue,omitempty"`
	Priority       *int       `json:"priority,omitempty"`
	RunAt          *time.Time `json:"run_at,omitempty"`
	DelayMs        int64      `json:"delay_ms,omitempty"`
	MaxRetries     *int       `json:"max_retries,omitempty"`
	UniqueKey      string     `json:"unique_key,omitempty"`
	ConcurrencyKey string     `json:"concurrency_key,omitempty"`
	TimeoutMs      int        `json:"timeout_ms,omitempty"`
	ID             string     `json:"id,omitempty"`
}

// Enqueued is enqueue_job's answer: created is false when an existing job
// answered (the live holder of UniqueKey, or the job that already has ID).
type Enqueued struct {
	ID      string `json:"id"`
	Created bool   `json:"created"`
}

// Enqueue adds one job of taskType; the payload is marshalled to JSON.
func (c *Client) Enqueue(ctx context.Context, taskType string, payload interface{}, opts EnqueueOptions) (Enqueued, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return Enqueued{}, fmt.Errorf("skipq: payload of %s: %w", taskType, err)
	}
	options, err := json.Marshal(opts)
	if err != nil {
		return Enqueued{}, err
	}
	var out Enqueued
	err = c.Pool.QueryRow(ctx, `SELECT id, created FROM enqueue_job($1::text, $2::jsonb, $3::jsonb)`, taskType, string(body), string(options)).Scan(&out.ID, &out.Created)
	if err != nil {
		return Enqueued{}, fmt.Errorf("skipq: enqueue %s: %w", taskType, err)
	}
	return out, nil
}

// Job is one claimed job; ID, Attempt and the worker id are its fence.
type Job struct {
	ID             string
	TaskType       string
	Queue          string
	Payload        json.RawMessage
	Attempt        int32
	LeaseExpiresAt time.Time
	RetryCount     int32
	MaxRetries     int32
}

// Claim takes up to max due jobs of the given types (nil: every type) for
// workerID, each under a lease of the given length.
func (c *Client) Claim(ctx context.Context, workerID string, types []string, max int, lease time.Duration) ([]Job, error) {
	rows, err := c.Pool.Query(ctx,
		`SELECT id, task_type, queue, payload, attempt, lease_expires_at, retry_count, max_retries FROM claim_jobs($1::text, $2::text[], $3::int, $4::int)`,
		workerID, types, max, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("skipq: claim: %w", err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		var j Job
		var payload []byte
		if err := rows.Scan(&j.ID, &j.TaskType, &j.Queue, &payload, &j.Attempt, &j.LeaseExpiresAt, &j.RetryCount, &j.MaxRetries); err != nil {
			return nil, fmt.Errorf("skipq: claim: %w", err)
		}
		j.Payload = json.RawMessage(payload)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("skipq: claim: %w", err)
	}
	return jobs, nil
}

func (c *Client) outcome(ctx context.Context, what string, sql string, args ...interface{}) (Outcome, error) {
	var o string
	if err := c.Pool.QueryRow(ctx, sql, args...).Scan(&o); err != nil {
		return "", fmt.Errorf("skipq: %s: %w", what, err)
	}
	return Outcome(o), nil
}

// Heartbeat extends the job's lease to lease from now (never past its timeout).
func (c *Client) Heartbeat(ctx context.Context, job Job, workerID string, lease time.Duration) (Outcome, error) {
	return c.outcome(ctx, "heartbeat", `SELECT heartbeat_job($1::text, $2::int, $3::text, $4::bigint * interval '1 millisecond')`,
		job.ID, job.Attempt, workerID, lease.Milliseconds())
}

// Complete completes this worker's attempt with result (nil: none).
func (c *Client) Complete(ctx context.Context, job Job, workerID string, result interface{}) (Outcome, error) {
	var text *string
	if result != nil {
		body, err := json.Marshal(result)
		if err != nil {
			return "", fmt.Errorf("skipq: result of %s: %w", job.ID, err)
		}
		s := string(body)
		text = &s
	}
	return c.outcome(ctx, "complete", `SELECT complete_job($1::text, $2::int, $3::text, $4::jsonb)`, job.ID, job.Attempt, workerID, text)
}

// Fail fails this worker's attempt; with retry and retries left it runs again after its type's backoff.
func (c *Client) Fail(ctx context.Context, job Job, workerID string, message string, retry bool) (Outcome, error) {
	return c.outcome(ctx, "fail", `SELECT fail_job($1::text, $2::int, $3::text, $4::text, $5::boolean)`, job.ID, job.Attempt, workerID, message, retry)
}
