// Command worker runs ingestion jobs with skipq's fenced SQL functions:
// claim_jobs in batches, heartbeat_job while a job runs, complete_job or
// fail_job at its end. SIGTERM or SIGINT: stop claiming, finish the jobs in
// flight, exit 0.
//
//	worker -concurrency 8 -lease 30s
//
// Prints one JSON line per event: ready, claimed, completed, failed, refused
// (the fence said no), lost, error, stopping, stopped.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"skipq.example/skipq"
)

func main() {
	host, _ := os.Hostname()
	database := flag.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL of the skipq database (default $DATABASE_URL)")
	workerID := flag.String("id", fmt.Sprintf("go-%s-%d", host, os.Getpid()), "worker id (the holder named in each claim)")
	concurrency := flag.Int("concurrency", 4, "jobs run at once")
	lease := flag.Duration("lease", 30*time.Second, "lease of each claim, extended by heartbeats")
	heartbeat := flag.Duration("heartbeat", 0, "heartbeat interval (0: lease/3; negative: none)")
	work := flag.Duration("work", 50*time.Millisecond, "how long one ingestion takes (simulated)")
	flag.Parse()
	if *database == "" {
		fmt.Fprintln(os.Stderr, "worker: no database: give -database or set DATABASE_URL")
		os.Exit(1)
	}

	var outMu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	emit := func(fields map[string]interface{}) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(fields)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	client, err := skipq.Connect(context.Background(), *database)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	defer client.Close()

	w := &skipq.Worker{
		Client:      client,
		WorkerID:    *workerID,
		Types:       []string{skipq.IngestionType},
		Concurrency: *concurrency,
		Lease:       *lease,
		Heartbeat:   *heartbeat,
		Handler: func(ctx context.Context, job skipq.Job) (interface{}, error) {
			p, err := skipq.DecodeIngestion(job)
			if err != nil {
				return nil, err
			}
			select {
			case <-time.After(*work):
			case <-ctx.Done():
				return nil, fmt.Errorf("ingestion of %s for %s stopped: %w", p.ChainID, p.TargetDate, ctx.Err())
			}
			return skipq.IngestionResult{Rows: 24}, nil
		},
		OnEvent: func(e skipq.Event) {
			fields := map[string]interface{}{"ev": e.Kind, "id": e.JobID, "attempt": e.Attempt}
			if e.Outcome != "" {
				fields["outcome"] = e.Outcome
			}
			if e.Err != "" {
				fields["error"] = e.Err
			}
			emit(fields)
		},
	}
	emit(map[string]interface{}{"ev": "ready", "workerId": *workerID})
	// "stopping" is printed when the signal arrives, while jobs in flight
	// finish; "stopped" waits for it, so the two always come in that order.
	stopping := make(chan struct{})
	go func() {
		<-ctx.Done()
		emit(map[string]interface{}{"ev": "stopping"})
		close(stopping)
	}()
	_ = w.Run(ctx)
	if ctx.Err() != nil {
		<-stopping
	}
	emit(map[string]interface{}{"ev": "stopped"})
}
