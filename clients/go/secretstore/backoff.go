package secretstore

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Jitter spreads, as (low, high) factors of the capped step; the same formula as strongroom.backoff.
var (
	// fullJitter is best at spreading many pods' retries after an outage.
	fullJitter = [2]float64{0, 1}
	// halfJitter waits at least half the step: a server that is down gets real rest.
	halfJitter = [2]float64{0.5, 1}
)

// backoffDelay is min(cap, base·2^attempt) times a uniform factor from jitter; attempt 0 is the first retry.
func backoffDelay(attempt int, base, capDelay time.Duration, jitter [2]float64) time.Duration {
	step := float64(base) * math.Pow(2, float64(min(max(attempt, 0), 60)))
	if capDelay > 0 {
		step = math.Min(step, float64(capDelay))
	}
	f := jitter[0] + rand.Float64()*(jitter[1]-jitter[0])
	return time.Duration(math.Max(0, step*f))
}

// sleep waits d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
