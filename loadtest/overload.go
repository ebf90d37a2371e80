package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// OverloadSteps are the offered rates of the overload scenario, as multiples of the
// gateway's capacity: under it, at it, past it, and back under it (does it recover?).
var OverloadSteps = []float64{0.5, 1, 1.5, 2, 3, 0.5}

// Capacity search: from the probe's OK answers per second, rates rise (or fall) by these
// factors, at most searchTries times each way, one -duration row each.
const (
	searchUp    = 1.1
	searchDown  = 0.9
	searchTries = 5
)

// overload runs the overload scenario (issue 19), one row per step of OverloadSteps, each
// -duration long on fresh connections, at multiples of the gateway's capacity: -capacity,
// else the highest offered rate it served without a refusal, a timeout or an error, which
// it searches for (searchCapacity). Each row's latency is of OK answers only; its metrics
// hold the slowest refusal and the gateway's requests in flight before the step began
// (what an earlier step left behind).
func (r *runner) overload(ctx context.Context, idx int, res *report.Result) ([]report.Row, error) {
	capacity := r.o.Capacity
	k := idx
	var rows []report.Row
	if capacity == 0 {
		var err error
		rows, capacity, err = r.searchCapacity(ctx, &k, res)
		if err != nil {
			return rows, err
		}
	}
	for _, m := range OverloadSteps {
		row, err := r.overloadStep(ctx, fmt.Sprintf("overload %gx", m), m*capacity, k)
		k++ // each row its own index: its own source addresses
		if row != nil {
			rows = append(rows, *row)
		}
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// searchCapacity measures the capacity the overload steps are multiples of: the highest
// offered rate the gateway serves without a refusal, a timeout or any other error (issue
// 19 defines its 2x and 3x so). What a gateway answers while far past its capacity (the
// probe, at -rate) is where the search starts, not the answer: past capacity the refusals
// cost CPU too, so it answers less than it can serve (10-30 % less on the 2-core box).
// From there the offered rate rises by searchUp while each row is clean, or falls by
// searchDown until one is. The rows it ran come first in the table, "overload search".
func (r *runner) searchCapacity(ctx context.Context, k *int, res *report.Result) ([]report.Row, float64, error) {
	var rows []report.Row
	step := func(name string, rate float64) (*report.Row, error) {
		row, err := r.overloadStep(ctx, name, rate, *k)
		*k++
		if row != nil {
			rows = append(rows, *row)
		}
		return row, err
	}
	probe, err := step("overload probe", r.o.Rate)
	if err != nil {
		return rows, 0, err
	}
	if probe.QPS <= 0 {
		return rows, 0, errors.New("overload: the probe at -rate got no OK answer; no capacity to step from")
	}
	clean := func(row *report.Row) bool {
		for _, n := range row.Errors {
			if n > 0 {
				return false
			}
		}
		return row.OK > 0
	}
	note := func(format string, a ...any) {
		res.Notes = append(res.Notes, fmt.Sprintf("overload: "+format, a...))
	}
	try := func(rate float64) (bool, error) {
		row, err := step("overload search", rate)
		return err == nil && clean(row), err
	}
	rate := math.Round(probe.QPS)
	capacity := 0.0
	bounded := !clean(probe) // some rate over the capacity found was not clean
	ok, err := try(rate)
	if ok {
		capacity = rate
		for i := 0; i < searchTries && err == nil && ok; i++ {
			rate = math.Round(rate * searchUp)
			if ok, err = try(rate); ok {
				capacity = rate
			}
		}
		bounded = bounded || !ok
	} else {
		bounded = true // the try at the probe's OK/s was not clean
		for i := 0; i < searchTries && err == nil && capacity == 0; i++ {
			rate = math.Round(rate * searchDown)
			if ok, err = try(rate); ok {
				capacity = rate
			}
		}
	}
	if err != nil {
		return rows, 0, err
	}
	switch {
	case capacity == 0:
		capacity = probe.QPS
		note("no rate down to %.0f/s was served without refusals or errors; the steps are multiples of the %.0f OK/s answered while offering %.0f/s", rate, capacity, r.o.Rate)
	case !bounded:
		note("capacity at least %.0f/s: every rate tried was served without a refusal, timeout or error, the probe's %.0f/s too; -rate is not past the capacity, so the steps are multiples of a lower bound (raise -rate)", capacity, r.o.Rate)
	default:
		note("capacity %.0f/s: the highest offered rate served without a refusal, timeout or error (%.0f OK/s answered while offering %.0f/s)", capacity, probe.QPS, r.o.Rate)
	}
	fmt.Fprintf(r.o.Progress, "[overload] capacity %.0f/s\n", capacity)
	return rows, capacity, nil
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
