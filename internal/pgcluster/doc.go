// Package pgcluster runs a throwaway PostgreSQL cluster: a fresh data
// directory made by initdb in a new temporary directory, served by a postgres
// child process listening on 127.0.0.1 and a free port, with logical
// decoding enabled by default.
//
// It backs every package's integration tests (through internal/pgtest) and
// the `cdc demo` command, so it is production code: errors say what was
// being done and, when the server fails to come up, carry the tail of the
// server log.
//
// # Server binaries
//
// [FindBinDir] locates initdb and postgres (see its documentation for the
// search order). When none are installed, [Start] returns an error that
// wraps [ErrNoServer] and suggests how to install them.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the calling process is root,
// the temporary directory is given to the "postgres" operating-system user
// and initdb and postgres run with that user's credentials.
//
// # Lifetime
//
// The postmaster is started directly (not through pg_ctl) as a child
// process. On Linux it gets SIGKILL as its parent-death signal, so it does
// not outlive the process that started it even when that process crashes.
// [Cluster.Stop] shuts it down (fast shutdown, then SIGKILL after 15s) and
// removes the temporary directory. Temporary directories left behind by
// processes that died without calling Stop are removed by later calls to
// [Start].
//
// # Faults
//
// [Cluster.Crash] stops the server with an immediate shutdown (SIGQUIT to
// the postmaster): open transactions are lost, clients see their
// connections drop, and the next start runs crash recovery.
// [Cluster.Restart] starts it again on the same port and data directory
// with the same settings (after a fast shutdown if it is running), and
// returns once it accepts connections. Server settings are given at start
// through [Options].Settings and kept across restarts.
//
// # Concurrency
//
// A [Cluster]'s methods are safe for concurrent use. Each database method
// opens and closes its own administrative connection.
package pgcluster
