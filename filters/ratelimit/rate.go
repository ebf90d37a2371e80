package ratelimit

import (
	"time"

	"github.com/mgw-project/mgw/config"
)

// parseRate reads a rate as config validation does ("N/s", "N/m" or "N/h", N from 1 to
// config.MaxRate) and returns the interval between two tokens in nanoseconds (at least
// 1) and the burst worth one second of that rate (rounded up, at least 1), which is the
// default burst.
func parseRate(s string) (interval int64, oneSecond int, err error) {
	n, per, err := config.ParseRate(s)
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
