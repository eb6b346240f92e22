package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTick is Linux's USER_HZ, the unit of utime and stime in
// /proc/PID/stat (100 on every architecture Go supports there).
const clockTick = 10 * time.Millisecond

// cpuMeter reads the CPU time the processes of a measure used, so that a
// catch-up row shows where the machine's time went: cdc, the PostgreSQL
// server (the walsender decoding the slot, and the backend of the Postgres
// sink) and this process (the ceiling's consumer, the in-process Kafka
// broker and Elasticsearch endpoint). It reads /proc: on another OS, or
// with a server on another machine, the parts it cannot see are left out.
type cpuMeter struct {
	postmaster int // the PostgreSQL server's pid; 0 when not on this machine
}

// newCPUMeter finds the PostgreSQL server behind pool on this machine: the
// parent of a backend, if that is a postgres process we can read.
func newCPUMeter(ctx context.Context, pool *pgxpool.Pool) *cpuMeter {
	var backend int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return &cpuMeter{}
	}
	st, ok := readStat(backend)
	if !ok {
		return &cpuMeter{}
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.ppid))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres") {
		return &cpuMeter{}
	}
	return &cpuMeter{postmaster: st.ppid}
}

// cpuSample is the CPU time used so far by cdc, by the server's processes
// (those alive when it was taken) and by this process.
type cpuSample struct {
	at     time.Time
	cdc    time.Duration
	server map[int]time.Duration // by pid
	self   time.Duration
}

// sample reads the CPU times now; cdcPid 0 leaves cdc out.
func (m *cpuMeter) sample(cdcPid int) cpuSample {
	s := cpuSample{at: time.Now()}
	if st, ok := readStat(os.Getpid()); ok {
		s.self = st.cpu
	}
	if cdcPid > 0 {
		if st, ok := readStat(cdcPid); ok {
			s.cdc = st.cpu
		}
	}
	if m.postmaster == 0 {
		return s
	}
	s.server = map[int]time.Duration{}
	if st, ok := readStat(m.postmaster); ok {
		s.server[m.postmaster] = st.cpu
	}
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return s
	}
	for _, d := range dir {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.ppid == m.postmaster {
			s.server[pid] = st.cpu
		}
	}
	return s
}

// CPU is the CPU used during a measure, in cores (CPU seconds per second of
// the measure); a negative value is one that could not be read.
type CPU struct {
	CDC    float64 `json:"cdc"`        // the cdc process
	Server float64 `json:"postgresql"` // the PostgreSQL server's processes
	Bench  float64 `json:"bench"`      // this process: the ceiling's consumer, the in-process targets
}

// since returns the cores used from a to now (taken with the same cdcPid).
// A server process that ended in between is left out (its time is lost
// with it); one that started counts from zero.
func (m *cpuMeter) since(a cpuSample, cdcPid int) CPU {
	b := m.sample(cdcPid)
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return CPU{CDC: -1, Server: -1, Bench: -1}
	}
	c := CPU{CDC: -1, Server: -1, Bench: (b.self - a.self).Seconds() / wall}
	if cdcPid > 0 {
		c.CDC = (b.cdc - a.cdc).Seconds() / wall
	}
	if m.postmaster != 0 {
		var d time.Duration
		for pid, t := range b.server {
			d += t - a.server[pid]
		}
		c.Server = d.Seconds() / wall
	}
	return c
}

// procStat is what cpuMeter reads of /proc/PID/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // utime + stime
}

// readStat reads /proc/pid/stat.
func readStat(pid int) (procStat, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	// The command name, in parentheses, may hold spaces: the fields
	// after it start at the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is the state (field 3): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, false
	}
	return procStat{ppid: ppid, cpu: time.Duration(ut+st) * clockTick}, true
}
