package skipq

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Handler runs one job. Its context is cancelled when the job's lease is lost
// or the job is cancelled; a returned error fails the attempt (retried unless
// it is Permanent); a nil error completes it with result.
type Handler func(ctx context.Context, job Job) (result interface{}, err error)

// PermanentError fails a job without a retry.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &PermanentError{Err: err} }

// Event is what the worker reports: "claimed", "completed", "failed",
// "refused" (the fence said no: Outcome says why), "lost" (a heartbeat found
// the lease gone; the handler's context is cancelled), "error".
type Event struct {
	Kind    string
	JobID   string
	Attempt int32
	Outcome Outcome
	Err     string
}

// Worker claims batches with claim_jobs, runs Handler for each job in its own
// goroutine (at most Concurrency at once), heartbeats while it runs, and ends
// each attempt with complete_job or fail_job, all fenced by (id, attempt,
// WorkerID).
type Worker struct {
	Client      *Client
	WorkerID    string
	Types       []string // nil: every type
	Concurrency int      // default 4
	Lease       time.Duration
	// Heartbeat is how often a running job's lease is extended (default Lease/3);
	// negative: never (to watch the fence refuse a worker whose lease ran out).
	Heartbeat time.Duration
	// Idle is how long to wait before claiming again when nothing was due (default 250 ms).
	Idle    time.Duration
	Handler Handler
	OnEvent func(Event)
}

func (w *Worker) emit(e Event) {
	if w.OnEvent != nil {
		w.OnEvent(e)
	}
}

// Run claims and runs jobs until ctx is done, then stops claiming, lets the
// jobs in flight finish (and reports them), and returns.
func (w *Worker) Run(ctx context.Context) error {
	concurrency := w.Concurrency
	if concurrency <= 0 {
		concurrency = 4
	}
	lease := w.Lease
	if lease <= 0 {
		lease = 30 * time.Second
	}
	idle := w.Idle
	if idle <= 0 {
		idle = 250 * time.Millisecond
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	running := 0
	freed := make(chan struct{}, 1)
	for ctx.Err() == nil {
		mu.Lock()
		free := concurrency - running
		mu.Unlock()
		if free == 0 {
			select {
			case <-freed:
			case <-ctx.Done():
			}
			continue
		}
		jobs, err := w.Client.Claim(ctx, w.WorkerID, w.Types, free, lease)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.emit(Event{Kind: "error", Err: err.Error()})
		}
		for _, job := range jobs {
			mu.Lock()
			running++
			mu.Unlock()
			wg.Add(1)
			w.emit(Event{Kind: "claimed", JobID: job.ID, Attempt: job.Attempt})
			go func(job Job) {
				defer wg.Done()
				w.runOne(job, lease)
				mu.Lock()
				running--
				mu.Unlock()
				select {
				case freed <- struct{}{}:
				default:
				}
			}(job)
		}
		if len(jobs) < free {
			select {
			case <-time.After(idle):
			case <-freed:
			case <-ctx.Done():
			}
		}
	}
	wg.Wait()
	return nil
}

// runOne runs one attempt to its end. Its calls use their own contexts: a
// stopping worker still finishes and reports the jobs it holds.
func (w *Worker) runOne(job Job, lease time.Duration) {
	jobCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	beat := w.Heartbeat
	if beat == 0 {
		beat = lease / 3
	}
	done := make(chan struct{})
	if beat > 0 {
		go func() {
			ticker := time.NewTicker(beat)
			defer ticker.Stop()
			for {
				select {
				case <-done:
					return
				case <-ticker.C:
					callCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
					outcome, err := w.Client.Heartbeat(callCtx, job, w.WorkerID, lease)
					stop()
					if err != nil {
						w.emit(Event{Kind: "error", JobID: job.ID, Attempt: job.Attempt, Err: err.Error()})
						continue
					}
					if outcome != Extended {
						w.emit(Event{Kind: "lost", JobID: job.ID, Attempt: job.Attempt, Outcome: outcome})
						cancel()
						return
					}
				}
			}
		}()
	}
	result, handlerErr := w.Handler(jobCtx, job)
	close(done)

	callCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	var outcome Outcome
	var err error
	if handlerErr == nil {
		outcome, err = w.Client.Complete(callCtx, job, w.WorkerID, result)
	} else {
		var permanent *PermanentError
		outcome, err = w.Client.Fail(callCtx, job, w.WorkerID, handlerErr.Error(), !errors.As(handlerErr, &permanent))
	}
	switch {
	case err != nil:
		w.emit(Event{Kind: "error", JobID: job.ID, Attempt: job.Attempt, Err: err.Error()})
	case outcome == Completed || outcome == AlreadyCompleted:
		w.emit(Event{Kind: "completed", JobID: job.ID, Attempt: job.Attempt, Outcome: outcome})
	case outcome == RetryScheduled || outcome == Failed || outcome == AlreadyFailed:
		msg := ""
		if handlerErr != nil {
			msg = handlerErr.Error()
		}
		w.emit(Event{Kind: "failed", JobID: job.ID, Attempt: job.Attempt, Outcome: outcome, Err: msg})
	default:
		w.emit(Event{Kind: "refused", JobID: job.ID, Attempt: job.Attempt, Outcome: outcome})
	}
}
