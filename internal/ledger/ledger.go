// Package ledger records every temporary resource a run creates, before it
// exists and again once it has an id, in a journal on disk, so that a run
// killed at any moment can be cleaned up later (`amibake cleanup`).
package ledger

import (
	"fmt"
	"time"
)

// Kind is a kind of AWS resource.
type Kind string

const (
	KindInstance      Kind = "instance"
	KindKeyPair       Kind = "key-pair"
	KindSecurityGroup Kind = "security-group"
	KindVolume        Kind = "volume"
	KindSnapshot      Kind = "snapshot"
	KindImage         Kind = "image"
	// KindLaunchTemplate is the launch template of a spot build's instant
	// fleet: journaled by its name (the token) before CreateLaunchTemplate.
	KindLaunchTemplate Kind = "launch-template"
	KindLocalFile      Kind = "local-file" // a private key file on disk
)

// Tag keys every resource amibake creates carries from its create call.
const (
	TagRunID     = "amibake:run-id"
	TagBuild     = "amibake:build"
	TagCreatedAt = "amibake:created-at"
	// TagLeaseUntil is a running build's proof of life: it pushes the
	// time forward on its resources while it runs, so that `cleanup
	// --tagged` on any machine leaves it alone however old it is, and
	// takes a dead run's resources once the time has passed.
	TagLeaseUntil = "amibake:lease-until"
)

// DefaultLease is how far ahead a build pushes its lease, and how long
// `cleanup --tagged` waits after a resource's creation before it counts
// a resource without a lease tag as abandoned.
const DefaultLease = 15 * time.Minute

// LeaseEnv names the variable that sets how far ahead a run pushes its
// lease (a duration, at least 1s; DefaultLease when unset).
const LeaseEnv = "AMIBAKE_LEASE"

// LeaseFromEnv reads LeaseEnv through getenv.
func LeaseFromEnv(getenv func(string) string) (time.Duration, error) {
	v := getenv(LeaseEnv)
	if v == "" {
		return DefaultLease, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("%s=%q: want a duration of at least 1s, such as 15m", LeaseEnv, v)
	}
	return d, nil
}

// Recorder is what build steps use. Intend is called before a create call
// (with the ClientToken or name that makes the call idempotent), Created
// after it returns the id, Resolved when EC2 answered that the call created
// nothing, Deleted after the resource is gone. Each call is durable (synced
// to disk) when it returns.
type Recorder interface {
	Intend(kind Kind, region, token string) (entry string, err error)
	Created(entry, id string) error
	Resolved(entry string) error
	Deleted(kind Kind, region, id string) error
}

// Nop records nothing; for tests of single steps.
type Nop struct{}

func (Nop) Intend(Kind, string, string) (string, error) { return "", nil }
func (Nop) Created(string, string) error                { return nil }
func (Nop) Resolved(string) error                       { return nil }
func (Nop) Deleted(Kind, string, string) error          { return nil }
