//go:build linux

package netpoll

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRxTimestampsDateTheBytesNotTheRead: bytes held in the socket while reading is paused
// are dated by ReadyAt from when reading resumes, unless the engine reads with the
// kernel's receive stamps (RxTimestamps): then from when they came. That is what lets the
// load harness, short of CPU, date an answer by its arrival rather than its own late read.
// Of two writes held together, the newer dates them.
func TestRxTimestampsDateTheBytesNotTheRead(t *testing.T) {
	const held = 80 * time.Millisecond
	for _, stamps := range []bool{false, true} {
		h := newTestHandler()
		type seen struct {
			ready time.Time
			n     int
		}
		got := make(chan seen, 4)
		paused := make(chan Conn, 1)
		h.onData = func(c Conn, data []byte) (int, error) {
			got <- seen{readyOf(c), len(data)}
			if data[0] == 'P' {
				c.PauseRead()
				paused <- c
			}
			return len(data), nil
		}
		_, addr := listenReadyAt(t, Config{Kind: "epoll", RxTimestamps: stamps}, h)
		a := dialTCP(t, addr)
		defer a.Close()
		a.Write([]byte("P"))
		<-got
		c := <-paused
		a.Write([]byte("x"))
		time.Sleep(held / 2)
		second := time.Now()
		a.Write([]byte("y"))
		time.Sleep(held / 2)
		resumed := time.Now()
		c.ResumeRead()
		var s seen
		select {
		case s = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("stamps %v: no OnData after ResumeRead", stamps)
		}
		if s.n != 2 {
			t.Fatalf("stamps %v: OnData got %d bytes, want the 2 held", stamps, s.n)
		}
		if stamps {
			if s.ready.Before(second.Add(-time.Millisecond)) || s.ready.After(second.Add(held/4)) {
				t.Errorf("with stamps: ready %v after the second write, want its arrival (within %v)", s.ready.Sub(second), held/4)
			}
		} else if s.ready.Before(resumed.Add(-time.Millisecond)) {
			t.Errorf("without stamps: ready %v before the resume, want the resume's time", resumed.Sub(s.ready))
		}
	}
}

// Only the epoll engine reads with recvmsg; asking rwloop for stamps is an error that names it.
func TestRxTimestampsNeedEpoll(t *testing.T) {
	_, err := New(Config{Kind: "rwloop", RxTimestamps: true})
	if err == nil || !strings.Contains(err.Error(), "RxTimestamps") {
		t.Fatalf("rwloop with RxTimestamps: err %v, want one naming RxTimestamps", err)
	}
}

// cmsgStamp is the control message recvmsg writes for SO_TIMESTAMPNS on 64-bit Linux.
func cmsgStamp(level, typ int32, sec, nsec int64) []byte {
	b := make([]byte, 32)
	ne := binary.NativeEndian
	ne.PutUint64(b, 32)
	ne.PutUint32(b[8:], uint32(level))
	ne.PutUint32(b[12:], uint32(typ))
	ne.PutUint64(b[16:], uint64(sec))
	ne.PutUint64(b[24:], uint64(nsec))
	return b
}

func TestRxStamp(t *testing.T) {
	other := cmsgStamp(unix.SOL_SOCKET, unix.SCM_RIGHTS, 0, 0)[:24] // len 32 claimed: too long
	binaryLen := func(b []byte, l uint64) []byte { binary.NativeEndian.PutUint64(b, l); return b }
	for _, tc := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"stamp", cmsgStamp(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, 1700000000, 5), 1700000000*1e9 + 5},
		{"after another message", append(binaryLen(cmsgStamp(unix.SOL_SOCKET, unix.SCM_RIGHTS, 0, 0)[:24], 20),
			cmsgStamp(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, 1700000000, 7)...), 1700000000*1e9 + 7},
		{"none", nil, 0},
		{"truncated", other, 0},
		{"other level", cmsgStamp(unix.IPPROTO_TCP, unix.SCM_TIMESTAMPNS, 1700000000, 5), 0},
		{"nanoseconds out of range", cmsgStamp(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, 1700000000, 1e9), 0},
		{"length below the header", binaryLen(cmsgStamp(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, 1, 1), 8), 0},
	} {
		if got := rxStamp(tc.oob); got != tc.want {
			t.Errorf("%s: rxStamp = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// FuzzRxStamp: the control-message reader never panics nor reads past what it is given,
// and a stamp it finds is a plausible time.
func FuzzRxStamp(f *testing.F) {
	f.Add(cmsgStamp(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, 1700000000, 5))
	f.Add(append(cmsgStamp(unix.SOL_SOCKET, unix.SCM_RIGHTS, 0, 0)[:24], 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		if got := rxStamp(oob); got < 0 || got >= (1<<33+1)*1e9 {
			t.Fatalf("rxStamp(%x) = %d, not a time", oob, got)
		}
	})
}
