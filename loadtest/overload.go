package loadtest

import (
	"context"
	"errors"
	"fmt"

	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// OverloadSteps are the offered rates of the overload scenario, as multiples of the
// gateway's capacity: under it, at it, past it, and back under it (does it recover?).
var OverloadSteps = []float64{0.5, 1, 1.5, 2, 3, 0.5}

// overload runs the overload scenario (issue 19): when no -capacity is given it first
// offers -rate and takes the OK answers per second as the capacity, then runs one row per
// step of OverloadSteps, each -duration long on fresh connections. Each row's latency is
// of OK answers only; its metrics hold the slowest refusal and the gateway's requests in
// flight before the step began (what an earlier step left behind).
func (r *runner) overload(ctx context.Context, idx int, res *report.Result) ([]report.Row, error) {
	var rows []report.Row
	capacity := r.o.Capacity
	k := idx
	if capacity == 0 {
		row, err := r.overloadStep(ctx, "overload probe", r.o.Rate, k)
		if row != nil {
			rows = append(rows, *row)
		}
		if err != nil {
			return rows, err
		}
		capacity = row.QPS
		if capacity <= 0 {
			return rows, errors.New("overload: the probe at -rate got no OK answer; no capacity to step from")
		}
		res.Notes = append(res.Notes, fmt.Sprintf("overload: capacity measured as %.0f OK/s while offering %.0f/s", capacity, r.o.Rate))
		fmt.Fprintf(r.o.Progress, "[overload] capacity %.0f OK/s\n", capacity)
	}
	for _, m := range OverloadSteps {
		k++
		row, err := r.overloadStep(ctx, fmt.Sprintf("overload %gx", m), m*capacity, k)
		if row != nil {
			rows = append(rows, *row)
		}
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

func (r *runner) overloadStep(ctx context.Context, name string, rate float64, idx int) (*report.Row, error) {
	saved := r.o.Rate
	r.o.Rate = rate
	defer func() { r.o.Rate = saved }()
	var before *observe.GatewayStats
	if gs, err := r.gatewayTotals(ctx); err == nil {
		before = &gs
	}
	fmt.Fprintf(r.o.Progress, "[overload] %s: offering %.0f requests/s\n", name, rate)
	row, err := r.scenario(ctx, worker.Overload, idx)
	if row == nil {
		return nil, err
	}
	row.Name, row.TargetQPS = name, rate
	if row.Metrics == nil {
		row.Metrics = map[string]float64{}
	}
	if before != nil {
		row.Metrics["gw_in_flight_before"] = float64(before.InFlight)
		row.Metrics["gw_goroutines_before"] = float64(before.Goroutines)
	}
	if row.Gateway.Available {
		// What the gateway says its queue was: of a refusal's time, the part spent in
		// front of its reactor (the rest is the box's and the harness's).
		// Readings before the load, and the first within it (the gateway's window may
		// still hold the last step's requests), are left out.
		wait, first := 0.0, true
		for _, s := range row.Timeline {
			switch {
			case s.Phase == "load" && first:
				first = false
			case s.Phase == "load" || s.Phase == "end":
				wait = max(wait, s.GatewayWait)
			}
		}
		row.Metrics["gw_queue_wait_max_ms"] = wait
	}
	return row, err
}
