//go:build linux

package netpoll

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// rxOOBSize is the control buffer a stamped read offers: one SCM_TIMESTAMPNS message (a
// 16-byte header and a 16-byte timespec on 64-bit Linux), with room to spare.
const rxOOBSize = 64

// rxStamp returns the receive time, in nanoseconds of the wall clock, that the kernel put
// in a read's control messages (SO_TIMESTAMPNS: for TCP, that of the newest segment the
// read took), or 0 when there is none. oob is what recvmsg(2) wrote; anything it cannot
// make sense of is no stamp. The layout read is 64-bit Linux's (a 64-bit cmsg_len and
// tv_sec); elsewhere no stamp is found.
func rxStamp(oob []byte) int64 {
	const hdr, ts = 16, 16
	if unix.SizeofCmsghdr != hdr {
		return 0
	}
	ne := binary.NativeEndian
	for len(oob) >= hdr {
		l := ne.Uint64(oob)
		if l < hdr || l > uint64(len(oob)) {
			return 0
		}
		level, typ := int32(ne.Uint32(oob[8:])), int32(ne.Uint32(oob[12:]))
		if level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && l >= hdr+ts {
			sec, nsec := int64(ne.Uint64(oob[hdr:])), int64(ne.Uint64(oob[hdr+8:]))
			if sec <= 0 || nsec < 0 || nsec >= 1e9 || sec > 1<<33 {
				return 0
			}
			return sec*1e9 + nsec
		}
		next := (l + 7) &^ 7 // CMSG_ALIGN
		if next >= uint64(len(oob)) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}
