package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// dirPrefix starts the name of every temporary directory Start makes, so
	// that directories left behind by dead processes can be recognised.
	dirPrefix = "cdc-pgcluster-"
	// ownerFile, in the temporary directory, holds the pid of the process
	// that made it.
	ownerFile = "owner.pid"
	// logFile, in the temporary directory, receives the server's stderr.
	logFile = "postgres.log"
	// dataDirName is the data directory's name inside the temporary directory.
	dataDirName = "data"

	// defaultStartTimeout bounds Start when ctx has no earlier deadline.
	defaultStartTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits for a fast shutdown before SIGKILL.
	stopTimeout = 15 * time.Second
	// portAttempts is how many ports Start tries when another process takes
	// the chosen port before the server binds it.
	portAttempts = 5
	// staleAge is the age after which a temporary directory without a
	// readable owner file is considered abandoned.
	staleAge = time.Hour
)

// Options configures [Start]. The zero value is a cluster with
// wal_level=logical, no logging, and binaries found by [FindBinDir].
type Options struct {
	// BinDir is the directory holding initdb and postgres.
	// Default: the result of FindBinDir.
	BinDir string
	// WALLevel is the server's wal_level: "logical", "replica" or "minimal".
	// Default: "logical".
	WALLevel string
	// Settings are extra server settings, passed as `-c name=value`; they
	// override the defaults (max_connections=300, fsync=off, timezone=UTC,
	// ...). listen_addresses, port and unix_socket_directories are managed by
	// Start and may not be set.
	Settings map[string]string
	// BaseDir is the directory in which the temporary directory is made.
	// Default: $TMPDIR when set; otherwise /dev/shm when it is a tmpfs with
	// at least 1 GiB free (much faster than a disk); otherwise os.TempDir().
	BaseDir string
	// Logger receives lifecycle messages (Info) and details (Debug).
	// Default: nil, which discards them.
	Logger *slog.Logger
}

// minMemoryDirFree is the free space /dev/shm needs to be used by default.
const minMemoryDirFree = 1 << 30

// baseDir returns the directory in which to make the temporary directory.
func (opts *Options) baseDir() string {
	if opts.BaseDir != "" {
		return opts.BaseDir
	}
	if os.Getenv("TMPDIR") == "" {
		if dir := memoryDir(); dir != "" {
			return dir
		}
	}
	return os.TempDir()
}

// reservedSettings are managed by Start.
var reservedSettings = []string{"listen_addresses", "port", "unix_socket_directories"}

// settingName matches a server setting (GUC) name, including custom
// "extension.name" settings.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// settings returns the server settings for opts, without the port.
func (opts *Options) settings() (map[string]string, error) {
	walLevel := opts.WALLevel
	if walLevel == "" {
		walLevel = "logical"
	}
	s := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": "",
		"wal_level":               walLevel,
		"max_replication_slots":   "64",
		"max_wal_senders":         "64",
		"max_connections":         "300",
		"fsync":                   "off",
		"full_page_writes":        "off",
		"synchronous_commit":      "on",
		"timezone":                "UTC",
	}
	if walLevel == "minimal" {
		s["max_wal_senders"] = "0" // required by wal_level=minimal
	}
	for k, v := range opts.Settings {
		if !settingName.MatchString(k) {
			return nil, fmt.Errorf("invalid setting name %q", k)
		}
		k = strings.ToLower(k)
		if slices.Contains(reservedSettings, k) {
			return nil, fmt.Errorf("setting %s is managed by pgcluster and cannot be overridden", k)
		}
		s[k] = v
	}
	return s, nil
}

// Cluster is a running throwaway PostgreSQL cluster. Create one with
// [Start] and release it with [Cluster.Stop].
type Cluster struct {
	dir     string
	dataDir string
	port    int
	log     *slog.Logger
	dbSeq   atomic.Uint64

	// What Restart needs to start the server again.
	binDir   string
	settings map[string]string // with the port
	acct     *account

	// mu guards the server's lifecycle: Crash, Restart and Stop hold it
	// while they act, so they run one at a time.
	mu      sync.Mutex
	server  *server
	down    bool // the server was stopped on purpose (Crash) and not restarted
	removed bool // Stop ran: the directory is gone

	stopOnce sync.Once
	stopErr  error
}

// Start creates a cluster in a new temporary directory with initdb (trust
// authentication, superuser "postgres", UTF8, locale C, no fsync) and starts
// postgres on 127.0.0.1 and a free port. It returns once the server accepts
// connections. ctx bounds the whole start (60s when ctx has no deadline); it
// does not bound the server's lifetime, which ends with [Cluster.Stop].
//
// When the server binaries are missing the error wraps [ErrNoServer]. When
// the server fails to start the error includes the tail of its log.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	began := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "pgcluster")

	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if err := checkBinDir(binDir); err != nil {
		return nil, fmt.Errorf("%w: %s: %v; %s", ErrNoServer, binDir, err, installHint)
	}
	settings, err := opts.settings()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, defaultStartTimeout)
	defer cancel()

	base := opts.baseDir()
	removeStale(base, log)
	dir, err := makeDir(base, acct)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if rerr := os.RemoveAll(dir); rerr != nil {
				log.Warn("remove temporary directory", "dir", dir, "err", rerr)
			}
		}
	}()
	dataDir := filepath.Join(dir, dataDirName)

	if err := initdb(ctx, binDir, dataDir, acct); err != nil {
		return nil, err
	}
	initialised := time.Since(began)

	logPath := filepath.Join(dir, logFile)
	var srv *server
	var port int
	for attempt := 1; ; attempt++ {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		settings["port"] = strconv.Itoa(port)
		srv, err = startServer(ctx, binDir, dataDir, logPath, settings, acct)
		if err == nil {
			break
		}
		if attempt < portAttempts && errors.Is(err, errPortInUse) {
			log.Debug("port taken before the server bound it, retrying", "port", port, "attempt", attempt)
			continue
		}
		return nil, err
	}

	c = &Cluster{dir: dir, dataDir: dataDir, port: port, log: log, server: srv,
		binDir: binDir, settings: settings, acct: acct}
	log.Info("postgres started", "port", port, "dir", dir, "bin_dir", binDir, "wal_level", settings["wal_level"],
		"initdb_duration", initialised.Round(time.Millisecond), "duration", time.Since(began).Round(time.Millisecond))
	return c, nil
}

// makeDir makes the temporary directory, records the owner pid in it and
// hands it to acct.
func makeDir(base string, acct *account) (string, error) {
	dir, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return "", fmt.Errorf("make temporary directory for postgres: %w", err)
	}
	err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	if err == nil {
		err = acct.checkTraversable(dir)
	}
	if err == nil {
		err = acct.chownTree(dir)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("prepare temporary directory for postgres: %w", err)
	}
	return dir, nil
}

// initdb creates the data directory.
func initdb(ctx context.Context, binDir, dataDir string, acct *account) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"--pgdata="+dataDir,
		"--auth=trust",
		"--username=postgres",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	)
	cmd.Env = serverEnv()
	cmd.SysProcAttr = acct.sysProcAttr()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb %s (as %s): %w\n%s", dataDir, acct.name, err, tail(out.Bytes(), 20))
	}
	return nil
}

// serverEnv is the environment of initdb and postgres: the caller's, minus
// libpq variables that could redirect them, with a C locale.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for postgres: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port for postgres: %w", err)
	}
	return port, nil
}

// errPortInUse marks a start that failed because the port was taken.
// Port returns the TCP port the server listens on, on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Dir returns the cluster's temporary directory. It holds the data
// directory ("data") and the server log ("postgres.log"), and is removed by
// [Cluster.Stop].
func (c *Cluster) Dir() string { return c.dir }

// DataDir returns the server's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// LogPath returns the path of the server log.
func (c *Cluster) LogPath() string { return filepath.Join(c.dir, logFile) }

// Stop shuts the server down (fast shutdown; SIGKILL if it has not exited
// after 15s) and removes the temporary directory. It is idempotent: later
// calls return the first call's result. A server that [Cluster.Crash]
// stopped and that was not restarted is not an error.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed = true
	var errs []error
	s := c.server
	select {
	case <-s.exited:
		if !c.down {
			errs = append(errs, fmt.Errorf("postgres had already exited: %v; log:\n%s", s.waitErr, s.logTail()))
		}
	default:
		if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
			errs = append(errs, fmt.Errorf("signal postgres to shut down: %w", err))
		}
		timer := time.NewTimer(stopTimeout)
		select {
		case <-s.exited:
			timer.Stop()
			if s.waitErr != nil {
				errs = append(errs, fmt.Errorf("postgres shutdown: %w", s.waitErr))
			}
		case <-timer.C:
			s.kill()
			errs = append(errs, fmt.Errorf("postgres did not shut down within %v; killed it", stopTimeout))
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove postgres directory: %w", err))
	}
	c.log.Info("postgres stopped", "port", c.port, "dir", c.dir)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop postgres on port %d: %w", c.port, err)
	}
	return nil
}

// removeStale removes temporary directories under base left behind by
// processes that died without stopping their cluster: the owner process is
// gone and no postmaster runs in the directory. Failures are logged, not
// returned: this is housekeeping.
func removeStale(base string, log *slog.Logger) {
	matches, err := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	if err != nil {
		return
	}
	for _, dir := range matches {
		if !isStale(dir) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove stale postgres directory", "dir", dir, "err", err)
			continue
		}
		log.Debug("removed stale postgres directory", "dir", dir)
	}
}

// isStale reports whether dir was left behind by a dead process.
func isStale(dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	owner, err := readPid(filepath.Join(dir, ownerFile))
	if err != nil {
		// Being created right now, or not ours: only very old ones go.
		return time.Since(fi.ModTime()) > staleAge
	}
	if processAlive(owner) {
		return false
	}
	if pm, err := readPid(filepath.Join(dir, dataDirName, "postmaster.pid")); err == nil && processAlive(pm) {
		return false
	}
	return true
}

// readPid reads the integer on the first line of a pid file.
func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}
