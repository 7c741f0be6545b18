package skipq

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
)

// IngestionType is the job type of the price-ingestion example (examples/ingestion/jobs.ts).
const IngestionType = "ingestion"

// Ingestion is the payload of an ingestion job, as the TypeScript registry's zod schema has it.
type Ingestion struct {
	ChainID    string `json:"chainId"`
	TargetDate string `json:"targetDate"`
}

// IngestionResult is what an ingestion job completes with.
type IngestionResult struct {
	Rows int `json:"rows"`
}

var datePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// Validate checks what the registry checks, with its words.
func (p Ingestion) Validate() error {
	if p.ChainID == "" {
		return fmt.Errorf("chainId: Too small: expected string to have >=1 characters")
	}
	if !datePattern.MatchString(p.TargetDate) {
		return fmt.Errorf("targetDate: must be a date as YYYY-MM-DD")
	}
	return nil
}

// EnqueueIngestion enqueues one typed ingestion job; the queue, priority and
// retries come from the type in job_types unless opts says otherwise.
func (c *Client) EnqueueIngestion(ctx context.Context, p Ingestion, opts EnqueueOptions) (Enqueued, error) {
	if err := p.Validate(); err != nil {
		return Enqueued{}, fmt.Errorf(`payload of "ingestion" is invalid: %w`, err)
	}
	return c.Enqueue(ctx, IngestionType, p, opts)
}

// DecodeIngestion reads a claimed job's payload; a payload that does not fit
// is a permanent failure (retrying cannot change it).
func DecodeIngestion(job Job) (Ingestion, error) {
	var p Ingestion
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return p, Permanent(fmt.Errorf(`payload of "ingestion" is invalid: %v`, err))
	}
	if err := p.Validate(); err != nil {
		return p, Permanent(fmt.Errorf(`payload of "ingestion" is invalid: %w`, err))
	}
	return p, nil
}
