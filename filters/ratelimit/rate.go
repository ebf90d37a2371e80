package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxRate bounds the count in "N/s" so the interval between tokens stays >= 1 ns.
const maxRate = 1_000_000_000

// parseRate reads "N/s", "N/m" or "N/h" (N an integer from 1 to 10^9) and returns the
// interval between two tokens, in nanoseconds (at least 1), and the rate per second.
func parseRate(s string) (interval int64, perSecond float64, err error) {
	num, unit, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, fmt.Errorf("%q is not a rate like 2000/s, 100/m or 5/h", clip(s))
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return 0, 0, fmt.Errorf("%q: the unit after / must be s, m or h", clip(s))
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > maxRate || num[0] == '+' {
		return 0, 0, fmt.Errorf("%q: the count must be an integer from 1 to %d", clip(s), maxRate)
	}
	interval = int64(per) / int64(n)
	if interval < 1 {
		interval = 1
	}
	return interval, float64(n) / per.Seconds(), nil
}

// clip keeps user input in error messages short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
