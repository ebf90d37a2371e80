//go:build linux

package netpoll

import (
	"sync"
	"sync/atomic"
)

// connTable maps fd → *econn as a flat array (two levels so it can grow without copying
// or locking readers). A map of 100k pointers would cost GC scan time and hashing on every
// event; the fd is already a dense small integer.
const tableChunkBits = 12
const tableChunk = 1 << tableChunkBits

type tableChunkT [tableChunk]atomic.Pointer[econn]

type connTable struct {
	mu     sync.Mutex // serialises chunk allocation only
	chunks []atomic.Pointer[tableChunkT]
	maxFD  atomic.Int64 // highest fd ever stored, bounds sweeps
}

func newConnTable(maxFD int) *connTable {
	n := maxFD/tableChunk + 1
	return &connTable{chunks: make([]atomic.Pointer[tableChunkT], n)}
}

func (t *connTable) slot(fd int, create bool) *atomic.Pointer[econn] {
	ci := fd >> tableChunkBits
	if fd < 0 || ci >= len(t.chunks) {
		return nil
	}
	ch := t.chunks[ci].Load()
	if ch == nil {
		if !create {
			return nil
		}
		t.mu.Lock()
		if ch = t.chunks[ci].Load(); ch == nil {
			ch = new(tableChunkT)
			t.chunks[ci].Store(ch)
		}
		t.mu.Unlock()
	}
	return &ch[fd&(tableChunk-1)]
}

func (t *connTable) get(fd int) *econn {
	if s := t.slot(fd, false); s != nil {
		return s.Load()
	}
	return nil
}

// put stores c at its fd; false if the fd is out of the table's range.
func (t *connTable) put(c *econn) bool {
	s := t.slot(int(c.fd), true)
	if s == nil {
		return false
	}
	s.Store(c)
	for {
		m := t.maxFD.Load()
		if int64(c.fd) <= m || t.maxFD.CompareAndSwap(m, int64(c.fd)) {
			break
		}
	}
	return true
}

// clear empties c's slot only if it still holds c: the fd may already belong to a newer
// connection once close(2) ran elsewhere.
func (t *connTable) clear(c *econn) {
	if s := t.slot(int(c.fd), false); s != nil {
		s.CompareAndSwap(c, nil)
	}
}

// each calls f for every stored connection until f returns false.
func (t *connTable) each(f func(*econn) bool) {
	max := int(t.maxFD.Load())
	for fd := 0; fd <= max; fd++ {
		if fd&(tableChunk-1) == 0 && t.chunks[fd>>tableChunkBits].Load() == nil {
			fd += tableChunk - 1
			continue
		}
		if c := t.get(fd); c != nil && !f(c) {
			return
		}
	}
}
