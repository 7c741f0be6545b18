// Command producer enqueues typed ingestion jobs through skipq's enqueue_job.
//
//	producer -chains 1,137,42161 -date 2026-12-01
//	producer -count 100 -prefix go
//
// Prints one JSON line per job: {"id": ..., "created": ..., "chainId": ...}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"skipq.example/skipq"
)

func main() {
	database := flag.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL of the skipq database (default $DATABASE_URL)")
	chains := flag.String("chains", "", "comma-separated chain ids, one job each")
	count := flag.Int("count", 0, "or: this many jobs, chain ids <prefix>-0 .. <prefix>-<count-1>")
	prefix := flag.String("prefix", "chain", "chain id prefix for -count")
	date := flag.String("date", time.Now().UTC().Format("2006-01-02"), "target date, YYYY-MM-DD")
	unique := flag.Bool("unique", true, "one live job per chain and date (unique_key chainId:date)")
	flag.Parse()
	if *database == "" {
		fail("no database: give -database or set DATABASE_URL")
	}
	var ids []string
	if *chains != "" {
		ids = strings.Split(*chains, ",")
	}
	for i := 0; i < *count; i++ {
		ids = append(ids, fmt.Sprintf("%s-%d", *prefix, i))
	}
	ctx := context.Background()
	client, err := skipq.Connect(ctx, *database)
	if err != nil {
		fail(err.Error())
	}
	defer client.Close()
	out := json.NewEncoder(os.Stdout)
	for _, chain := range ids {
		opts := skipq.EnqueueOptions{}
		if *unique {
			opts.UniqueKey = chain + ":" + *date
		}
		job, err := client.EnqueueIngestion(ctx, skipq.Ingestion{ChainID: chain, TargetDate: *date}, opts)
		if err != nil {
			fail(err.Error())
		}
		_ = out.Encode(map[string]interface{}{"id": job.ID, "created": job.Created, "chainId": chain})
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "producer:", message)
	os.Exit(1)
}
