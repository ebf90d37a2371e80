package gateway

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mgw-project/mgw/netpoll"
)

// Connection lifecycle beyond a single request (issue 14): drains whose GOAWAYs are spread
// over a window, and connections retired at a maximum age, so that the clients of a leaving
// or long-lived instance do not all reconnect in the same instant.

// goAwayMaxAge is the GOAWAY reason of a connection retired at max_connection_age. Like
// "shutdown" it is not named by mmtp.md; clients treat every reason alike.
const goAwayMaxAge = "max_age"

// spreadTick is how often a spread drain sends the GOAWAYs that came due.
const spreadTick = 10 * time.Millisecond

// goAwayAll tells every connection to wind down (drainer), all at once or, with spread,
// in a random order at an even pace over spread. The channel closes once every one was
// told; when ctx ends first the rest are told at once.
func goAwayAll(ctx context.Context, eng netpoll.Engine, spread time.Duration) <-chan struct{} {
	var ss []drainer
	eng.Range(func(c netpoll.Conn) bool {
		if s, ok := c.Context().(drainer); ok {
			ss = append(ss, s)
		}
		return true
	})
	done := make(chan struct{})
	if spread <= 0 || len(ss) < 2 {
		for _, s := range ss {
			s.drain()
		}
		close(done)
		return done
	}
	rand.Shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
	go func() {
		defer close(done)
		t := time.NewTicker(spreadTick)
		defer t.Stop()
		start, sent := time.Now(), 0
		for {
			due := min(len(ss), 1+int(float64(len(ss))*float64(time.Since(start))/float64(spread)))
			for ; sent < due; sent++ {
				ss[sent].drain()
			}
			if sent == len(ss) {
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				for ; sent < len(ss); sent++ {
					ss[sent].drain()
				}
				return
			}
		}
	}()
	return done
}

// retirer is a session that can be retired at its maximum age.
type retirer interface{ retire() }

// retire is drain with its own GOAWAY reason.
func (s *mmtpSession) retire() {
	if s.goAway(goAwayMaxAge) {
		time.AfterFunc(drainLinger, func() { s.c.CloseAfterFlush(netpoll.ReasonLocal) })
	}
}

func (s *httpSession) retire() { s.drain() }

// maxAge is connection id's maximum age on l: max_connection_age with a per-connection
// jitter of up to ±10%, the same on every sweep. 0: no maximum.
func (l *listener) maxAge(id uint64) time.Duration {
	age := l.cfg.MaxConnectionAge.D()
	if age <= 0 {
		return 0
	}
	// splitmix64: a stable pseudo-random fraction per connection, without storing one.
	z := id + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	frac := float64(z>>11)/float64(1<<53)*0.2 - 0.1
	return age + time.Duration(frac*float64(age))
}

// ageLoop retires connections past their listener's max_connection_age and closes those
// still open a grace period later. One sweep of all connections per period, no timer per
// connection.
func (g *Gateway) ageLoop(period time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if g.draining.Load() {
			continue // the drain winds every connection down already
		}
		now := time.Now()
		g.engine.Range(func(c netpoll.Conn) bool {
			s := sessionOf(c)
			if s == nil {
				return true
			}
			b := s.base()
			age := b.l.maxAge(c.ID())
			if age == 0 || b.migrating.Load() {
				return true
			}
			lived := now.Sub(time.Unix(int64(b.born.Load()), 0))
			switch {
			case lived < age:
			case lived >= age+b.l.cfg.MaxConnectionAgeGrace.D():
				c.CloseWithReason(netpoll.ReasonTimeout)
			default:
				if r, ok := s.(retirer); ok {
					if b.retired.CompareAndSwap(false, true) {
						b.l.m.retired.Inc()
					}
					r.retire()
				}
			}
			return true
		})
	}
}

// startAgeLoop runs ageLoop when a listener has a maximum connection age, sweeping about
// twenty times per shortest age (at most every 100 ms, at least every 10 s).
func (g *Gateway) startAgeLoop() {
	var shortest time.Duration
	for _, l := range g.listeners {
		if a := l.cfg.MaxConnectionAge.D(); a > 0 && (shortest == 0 || a < shortest) {
			shortest = a
		}
	}
	if shortest == 0 {
		return
	}
	go g.ageLoop(min(max(shortest/20, 100*time.Millisecond), 10*time.Second), g.loopStop)
}

// paceLimiter hands out turns at a fixed rate, a tenth of a second's worth at once. Each
// caller reserves its own turn, so waiters wake one by one rather than all together.
type paceLimiter struct {
	interval time.Duration
	burst    time.Duration
	mu       sync.Mutex
	next     time.Time // the next free turn
}

func newPaceLimiter(perSecond int) *paceLimiter {
	if perSecond <= 0 {
		return nil
	}
	iv := time.Second / time.Duration(perSecond)
	return &paceLimiter{interval: iv, burst: max(iv, 100*time.Millisecond)}
}

// reserve takes the next turn and returns how long to wait for it (0: now).
func (p *paceLimiter) reserve() time.Duration {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if earliest := now.Add(-p.burst); p.next.Before(earliest) {
		p.next = earliest
	}
	p.next = p.next.Add(p.interval)
	return max(0, p.next.Sub(now))
}

// holdHello is called by the reactor worker for each HELLO: over the listener's
// max_hello_rate it reserves the HELLO a turn, stops reading the connection until then
// and returns true; the HELLO stays unread in the reactor and comes again at its turn.
func (s *mmtpSession) holdHello() bool {
	if s.l.hellos == nil {
		return false
	}
	if s.helloSlot {
		s.helloSlot = false
		return false
	}
	wait := s.l.hellos.reserve()
	if wait <= 0 {
		return false
	}
	s.helloSlot = true
	s.l.m.helloHeld.Inc()
	s.c.PauseRead()
	time.AfterFunc(wait, s.c.ResumeRead)
	return true
}
