// Readings from /proc: a process's RSS and CPU time, the process behind a
// listening port, and where the machine's CPU went during a measurement.

package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procRSS is VmRSS of pid in bytes, -1 if unreadable.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return -1
}

// clockTick is USER_HZ, 100 on every Linux the harness targets.
const clockTick = 10 * time.Millisecond

// procCPU is the user+system CPU time of pid (all threads), -1 if unreadable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may contain spaces; fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * clockTick
}

// pidListeningOn finds the process holding a listening TCP socket on port
// (via /proc/net/tcp and /proc/*/fd), 0 if not found or not permitted.
func pidListeningOn(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, p, _ := strings.Cut(fs[1], ":")
			if v, err := strconv.ParseInt(p, 16, 32); err == nil && int(v) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// machineBusy is the CPU time all processes have used since boot (user,
// nice, system, irq, softirq, steal) from /proc/stat; -1 if unreadable.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// cpuShare is where the machine's CPU went during a measurement, in percent
// of one core: the server, this harness's clients, the fake provider's
// process, and every other process (a shared machine disturbs the figures).
type cpuShare struct {
	Machine float64 `json:"machine_cpu_percent"`
	Server  float64 `json:"server_cpu_percent"`
	Harness float64 `json:"harness_cpu_percent"`
	Fake    float64 `json:"fake_provider_cpu_percent"`
	Store   float64 `json:"store_cpu_percent,omitempty"`     // the mongo stand-in, if any
	Pub     float64 `json:"publisher_cpu_percent,omitempty"` // the Centrifugo publisher, if any
	Others  float64 `json:"other_processes_cpu_percent"`
}

type cpuMeter struct {
	at                                      time.Time
	pid                                     int
	machine, server, self, fake, store, pub time.Duration
}

// fakePID is the fake provider's process, when it has one; its CPU is
// reported apart from the harness's.
var fakePID int

func startCPU(pid int) cpuMeter {
	return cpuMeter{at: time.Now(), pid: pid, machine: machineBusy(), server: cpuOf(pid),
		self: procCPU(os.Getpid()), fake: cpuOf(fakePID), store: cpuOf(storePID), pub: cpuOf(publisherPID)}
}

// cpuOf is procCPU of pid, -1 when there is no such process (pid 0).
func cpuOf(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	return procCPU(pid)
}

func (m cpuMeter) stop() cpuShare {
	n := startCPU(m.pid)
	secs := n.at.Sub(m.at).Seconds()
	pct := func(a, b time.Duration) float64 {
		if a < 0 || b < 0 || secs <= 0 {
			return 0
		}
		return round(100*(b-a).Seconds()/secs, 1)
	}
	s := cpuShare{Machine: pct(m.machine, n.machine), Server: pct(m.server, n.server), Harness: pct(m.self, n.self),
		Fake: pct(m.fake, n.fake), Store: pct(m.store, n.store), Pub: pct(m.pub, n.pub)}
	s.Others = round(max(0, s.Machine-s.Server-s.Harness-s.Fake-s.Store-s.Pub), 1)
	return s
}
