package nats

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Value says what the message payload is.
type Value string

// Values.
const (
	// ValueEnvelope is the JSON envelope of SPEC §5 (package envelope). The
	// default.
	ValueEnvelope Value = "envelope"
	// ValueData is the event's data JSON as stored by Marten, the event
	// metadata being in the headers only.
	ValueData Value = "data"
)

// Values returns every Value, the default (ValueEnvelope) first: the
// spellings the configuration accepts.
func Values() []Value { return []Value{ValueEnvelope, ValueData} }

// Retention is the retention policy of a stream the sink creates.
type Retention string

// Retentions.
const (
	// RetentionLimits keeps messages until a limit (age, count, bytes)
	// removes them. The default, and JetStream's.
	RetentionLimits Retention = "limits"
	// RetentionInterest keeps a message until every consumer acknowledged it.
	RetentionInterest Retention = "interest"
	// RetentionWorkQueue keeps a message until one consumer acknowledged it.
	RetentionWorkQueue Retention = "workqueue"
)

// Retentions returns every Retention, the default (RetentionLimits) first.
func Retentions() []Retention {
	return []Retention{RetentionLimits, RetentionInterest, RetentionWorkQueue}
}

func (r Retention) policy() jetstream.RetentionPolicy {
	switch r {
	case RetentionInterest:
		return jetstream.InterestPolicy
	case RetentionWorkQueue:
		return jetstream.WorkQueuePolicy
	}
	return jetstream.LimitsPolicy
}

// Storage is where a stream the sink creates keeps its messages.
type Storage string

// Storages.
const (
	StorageFile   Storage = "file" // on disk; the default, and JetStream's
	StorageMemory Storage = "memory"
)

// Storages returns every Storage, the default (StorageFile) first.
func Storages() []Storage { return []Storage{StorageFile, StorageMemory} }

func (s Storage) storage() jetstream.StorageType {
	if s == StorageMemory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// oneOf checks that v is empty (the default) or one of choices, naming key
// in the error.
func oneOf[T ~string](key string, v T, choices []T) error {
	if v == "" || slices.Contains(choices, v) {
		return nil
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		names[i] = string(c)
	}
	return fmt.Errorf("%s %q: want one of %s", key, v, strings.Join(names, ", "))
}

// Auth is how the sink authenticates to the servers: at most one of a user
// and password, a token, an NKey seed file or a credentials (JWT) file.
// The zero value is no authentication.
type Auth struct {
	User     string
	Password string // usually ${VAR}; appears in no error or log
	Token    string // appears in no error or log
	// NKeyFile is a file holding an NKey seed ("SU..."), whose key signs
	// the server's challenge.
	NKeyFile string
	// CredsFile is a credentials file (a user JWT and its NKey seed), as
	// nsc writes them.
	CredsFile string
}

// String describes the authentication without its secrets, so that
// printing an Auth with %v or %+v, or logging it, shows none.
func (a Auth) String() string {
	switch {
	case a.User != "":
		return fmt.Sprintf("user %q", a.User)
	case a.Token != "":
		return "a token"
	case a.NKeyFile != "":
		return fmt.Sprintf("the NKey in %s", a.NKeyFile)
	case a.CredsFile != "":
		return fmt.Sprintf("the credentials in %s", a.CredsFile)
	}
	return "no authentication"
}

// GoString is String, for %#v.
func (a Auth) GoString() string { return a.String() }

// Check checks that at most one way is set, and a password has a user.
func (a Auth) Check() error {
	n := 0
	for _, set := range []bool{a.User != "" || a.Password != "", a.Token != "", a.NKeyFile != "", a.CredsFile != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("set one of user and password, token, nkey_file or creds_file, not several")
	case a.Password != "" && a.User == "":
		return errors.New("password without user")
	}
	return nil
}
