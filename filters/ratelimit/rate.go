package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxRate bounds N in a rate "N/s" so that rate arithmetic cannot overflow.
const MaxRate = 1_000_000_000

// ParseRate reads a rate limit such as "2000/s", "100/m" or "5/h": N > 0 requests per
// second, minute or hour.
func ParseRate(s string) (n int, per time.Duration, err error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not a rate like 2000/s, 100/m, 5/h", clip(s))
	}
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
	n, err = strconv.Atoi(num)
	if err != nil || n <= 0 || n > MaxRate {
		return 0, 0, fmt.Errorf("%q: the count must be an integer from 1 to %d", clip(s), MaxRate)
	}
	return n, per, nil
}

// parseRate reads a rate (ParseRate) and returns the interval between two tokens in nanoseconds (at least
// 1) and the burst worth one second of that rate (rounded up, at least 1), which is the
// default burst.
func parseRate(s string) (interval int64, oneSecond int, err error) {
	n, per, err := ParseRate(s)
	if err != nil {
		return 0, 0, err
	}
	interval = max(1, int64(per)/int64(n))
	oneSecond = max(1, int((int64(n)*int64(time.Second)+int64(per)-1)/int64(per)))
	return interval, oneSecond, nil
}

// clip keeps user input in error messages short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
