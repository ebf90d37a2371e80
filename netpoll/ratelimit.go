package netpoll

import "time"

// acceptBucket is a listener's token bucket for ListenerOptions.AcceptRate. Only the
// listener's accept goroutine touches it.
type acceptBucket struct {
	rate   float64 // tokens per second; 0: no cap
	burst  float64
	tokens float64
	last   time.Time
}

func newAcceptBucket(rate int) acceptBucket {
	if rate <= 0 {
		return acceptBucket{}
	}
	b := acceptBucket{rate: float64(rate), burst: max(1, float64(rate)/10)}
	b.tokens, b.last = b.burst, time.Now()
	return b
}

// take spends a token, or returns how long until one is there.
func (b *acceptBucket) take() (ok bool, wait time.Duration) {
	if b.rate == 0 {
		return true, 0
	}
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
