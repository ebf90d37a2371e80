package observe

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel is the kernel's side of the box at one moment.
type Kernel struct {
	TCPInuse    int64 // TCP sockets in use (sockstat "inuse")
	TCPAlloc    int64
	TCPMemBytes int64 // pages of TCP buffers, in bytes (sockstat "mem")
	// Slab holds the socket-related slab caches in bytes (active objects x object size);
	// nil when /proc/slabinfo is not readable (it needs root).
	Slab map[string]int64
}

// SlabTotal sums Slab.
func (k Kernel) SlabTotal() int64 {
	var n int64
	for _, v := range k.Slab {
		n += v
	}
	return n
}

// SocketSlabs are the caches a TCP connection registered in epoll occupies: the socket
// itself, its inode, dentry and file, and the epoll item. dentry and filp are shared with
// ordinary files, so the report uses the change over the run, not the absolute value.
var SocketSlabs = []string{"TCP", "TCPv6", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "eventpoll_pwq", "request_sock_TCP", "tw_sock_TCP"}

// ReadKernel reads /proc/net/sockstat and, when readable, /proc/slabinfo.
func ReadKernel() (Kernel, error) {
	k, err := ParseSockstat(readFile("/proc/net/sockstat"))
	if err != nil {
		return k, err
	}
	if b, err := os.ReadFile("/proc/slabinfo"); err == nil {
		k.Slab = ParseSlabinfo(b, SocketSlabs)
	}
	return k, nil
}

func readFile(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

// ParseSockstat reads the TCP line of /proc/net/sockstat:
// "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 0" (mem in pages).
func ParseSockstat(b []byte) (Kernel, error) {
	var k Kernel
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return k, fmt.Errorf("sockstat: TCP %s %q: %w", f[i], f[i+1], err)
			}
			switch f[i] {
			case "inuse":
				k.TCPInuse = v
			case "alloc":
				k.TCPAlloc = v
			case "mem":
				k.TCPMemBytes = v * int64(os.Getpagesize())
			}
		}
		return k, nil
	}
	return k, fmt.Errorf("sockstat: no TCP line")
}

// ParseSlabinfo returns active_objs x objsize for each named cache present.
func ParseSlabinfo(b []byte, names []string) map[string]int64 {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !want[f[0]] {
			continue
		}
		active, err1 := strconv.ParseInt(f[1], 10, 64)
		size, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 == nil && err2 == nil {
			out[f[0]] = active * size
		}
	}
	return out
}

// OwnNofile returns this process's soft open-file limit.
func OwnNofile() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}

// ProcNofile reads the soft "Max open files" of pid from /proc/<pid>/limits.
func ProcNofile(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, fmt.Errorf("limits of pid %d: %w", pid, err)
	}
	return ParseLimitsNofile(b)
}

// ParseLimitsNofile extracts the soft open-files limit from a /proc/<pid>/limits text.
func ParseLimitsNofile(b []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
		if len(f) < 1 {
			break
		}
		if f[0] == "unlimited" {
			return 1 << 62, nil
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("limits: Max open files %q: %w", f[0], err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("limits: no \"Max open files\" line")
}

// PortRange reads net.ipv4.ip_local_port_range: the ephemeral ports one source address
// may use towards one destination.
func PortRange() (lo, hi int) {
	f := strings.Fields(string(readFile("/proc/sys/net/ipv4/ip_local_port_range")))
	if len(f) == 2 {
		lo, _ = strconv.Atoi(f[0])
		hi, _ = strconv.Atoi(f[1])
	}
	if lo <= 0 || hi < lo {
		return 32768, 60999 // the Linux default
	}
	return lo, hi
}

// ProcRSS reads VmRSS of pid in bytes, for a gateway whose stats lack it.
func ProcRSS(pid int) (uint64, error) { return procKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// ProcPSS returns a process's proportional set size: its resident memory with each page
// it shares divided among the processes sharing it. Summed over several processes of one
// binary it is the memory they take together; their RSS summed counts the binary's pages
// once per process.
func ProcPSS(pid int) (uint64, error) {
	return procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

// procKB reads the "key N kB" line of a /proc file, in bytes.
func procKB(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == key {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// LoadAvg returns the 1-minute load average and the CPUs online, to say how busy the box
// was: figures taken on a box shared with other work are not the gateway's alone.
func LoadAvg() (load1 float64, cpus int) {
	f := strings.Fields(string(readFile("/proc/loadavg")))
	if len(f) > 0 {
		load1, _ = strconv.ParseFloat(f[0], 64)
	}
	return load1, runtime.NumCPU()
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every Linux ABI Go
// supports.
const clockTicks = 100

// ProcCPU returns user+system CPU seconds of pid from /proc/<pid>/stat.
func ProcCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatCPU(b)
}

// ParseStatCPU reads utime and stime (fields 14 and 15) of a /proc/<pid>/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields count from the last ')'.
func ParseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14 -> f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command, want at least 13", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q: not numbers", f[11], f[12])
	}
	return float64(u+s) / clockTicks, nil
}
