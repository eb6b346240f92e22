package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoServer is wrapped by the errors of [FindBinDir] and [Start] when the
// PostgreSQL server binaries (initdb and postgres) cannot be found.
var ErrNoServer = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

// BinDirEnv is the environment variable that, when set, names the directory
// holding initdb and postgres.
const BinDirEnv = "CDC_PG_BIN"

// installHint is appended to ErrNoServer errors.
const installHint = "install them, e.g. with: apt-get install -y postgresql-15 (or set " + BinDirEnv + " to the directory holding initdb and postgres)"

// debianRoot is where Debian and Ubuntu install one directory per major
// version.
const debianRoot = "/usr/lib/postgresql"

// FindBinDir returns the directory that holds the PostgreSQL server binaries
// initdb and postgres. It tries, in order:
//
//  1. the directory named by $CDC_PG_BIN, if set (an error if it lacks either
//     binary: an explicit setting is never silently ignored);
//  2. `pg_config --bindir`, if that directory has both binaries;
//  3. initdb on $PATH, with symlinks resolved (/usr/local/bin/initdb ->
//     /usr/lib/postgresql/15/bin/initdb), if its directory also has postgres;
//  4. the highest version under /usr/lib/postgresql/*/bin.
//
// When all fail the error wraps [ErrNoServer].
func FindBinDir() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if err := checkBinDir(dir); err != nil {
			return "", fmt.Errorf("%w: $%s=%s: %v; %s", ErrNoServer, BinDirEnv, dir, err, installHint)
		}
		return dir, nil
	}
	if dir := pgConfigBinDir(); dir != "" && checkBinDir(dir) == nil {
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if dir := filepath.Dir(real); checkBinDir(dir) == nil {
				return dir, nil
			}
		}
	}
	if dir := highestDebianBinDir(debianRoot); dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("%w: looked in $%s, `pg_config --bindir`, $PATH and %s/*/bin; %s",
		ErrNoServer, BinDirEnv, debianRoot, installHint)
}

// checkBinDir reports whether dir holds executable initdb and postgres.
func checkBinDir(dir string) error {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("no %s: %w", name, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", filepath.Join(dir, name))
		}
	}
	return nil
}

// pgConfigBinDir returns the output of `pg_config --bindir`, or "" when
// pg_config is missing or fails. pg_config may belong to a client-only
// package, so the caller still checks the directory.
func pgConfigBinDir() string {
	p, err := exec.LookPath("pg_config")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "--bindir").Output()
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(out))
}

// highestDebianBinDir returns root/<version>/bin for the highest version that
// has both binaries, or "".
func highestDebianBinDir(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	slices.SortFunc(versions, compareVersions)
	for _, v := range slices.Backward(versions) {
		if dir := filepath.Join(root, v, "bin"); checkBinDir(dir) == nil {
			return dir
		}
	}
	return ""
}

// compareVersions orders dotted version strings numerically ("9.6" < "10" <
// "15"); non-numeric parts compare as strings.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		if i >= len(as) {
			return -1
		}
		if i >= len(bs) {
			return 1
		}
		an, aerr := strconv.Atoi(as[i])
		bn, berr := strconv.Atoi(bs[i])
		var c int
		if aerr == nil && berr == nil {
			c = an - bn
		} else {
			c = strings.Compare(as[i], bs[i])
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
