package gateway

import (
	"errors"
	"sync/atomic"
)

// taskPool runs request tasks: a goroutine started for each admitted request, gone when
// the request is done, at most cap at once.
//
// Why not a pool of reused workers (ants, as the reactor uses): a request task outlives
// its admission slot by the write of its answer, and on a saturated core it then waits its
// turn to go back to the pool. Every task admitted meanwhile found no idle worker and
// started one more, and under an overload of one core hundreds of idle workers lived out
// their expiry, crowding the scheduler the reactor needs to refuse requests quickly. A new
// goroutine costs about a microsecond, and admission bounds how many run.
type taskPool struct {
	cap     int64
	running atomic.Int64
	closed  atomic.Bool
}

var (
	errPoolFull   = errors.New("request pool: every task slot is taken")
	errPoolClosed = errors.New("request pool: closed")
)

func newTaskPool(size int) *taskPool { return &taskPool{cap: int64(size)} }

// Submit runs f on a new goroutine, or fails at once when cap tasks are running or the
// pool is closed.
func (p *taskPool) Submit(f func()) error {
	if p.closed.Load() {
		return errPoolClosed
	}
	if p.running.Add(1) > p.cap {
		p.running.Add(-1)
		return errPoolFull
	}
	go func() {
		defer p.running.Add(-1)
		f()
	}()
	return nil
}

func (p *taskPool) Running() int { return int(p.running.Load()) }
func (p *taskPool) Cap() int     { return int(p.cap) }

// Release refuses new tasks; those running finish.
func (p *taskPool) Release() { p.closed.Store(true) }
