package storetest

import (
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// Factory is how the conformance suite makes and inspects the stores it
// tests. Every field is required.
type Factory struct {
	// Open returns a fresh, empty store keyed with keys, its schema in
	// place (as after Migrate). Open registers with t.Cleanup whatever
	// closes the store and removes its data.
	Open func(t *testing.T, keys *persistence.Keyring) persistence.Store
	// Reopen returns a second store on the same data as st (made by Open),
	// keyed with keys: the suite uses it to rotate keys and to lose one.
	// It registers the second store's closing with t.Cleanup; the data
	// stays st's to remove.
	Reopen func(t *testing.T, st persistence.Store, keys *persistence.Keyring) persistence.Store
	// Corrupt damages the stored ciphertext of message seq of session
	// sessionID (flipping a byte, say) without changing its key id, as a
	// tampered or decayed record would be.
	Corrupt func(t *testing.T, st persistence.Store, sessionID string, seq int64)
	// Dump returns every byte st holds for the suite to search: the
	// documents of every collection, or the database files. The suite
	// checks in it that no text is stored in the clear and that a deleted
	// session leaves no record behind.
	Dump func(t *testing.T, st persistence.Store) []byte
}

// Run runs every conformance test against the stores f makes, as parallel
// subtests of t named for what they check. A store passes when it keeps
// every promise of the persistence.Store contract and of the maintenance
// interfaces (persistence.Rekeyer, Migrator and Importer), which a store
// must implement too.
//
// The one property-based test (pagination while writing) runs
// RapidChecks cases unless -rapid.checks or RAPID_CHECKS says otherwise;
// call Main from TestMain so that this is settled before any test runs.
func Run(t *testing.T, f Factory) {
	t.Helper()
	if f.Open == nil || f.Reopen == nil || f.Corrupt == nil || f.Dump == nil {
		t.Fatal("storetest.Run: the Factory needs Open, Reopen, Corrupt and Dump")
	}
	limitRapidChecks()
	s := &suite{f: f}
	for _, g := range []struct {
		name  string
		cases []testCase
	}{
		{"sessions", sessionCases},
		{"messages", messageCases},
		{"fencing", fencingCases},
		{"lists", listCases},
		{"encryption", encryptionCases},
		{"maintenance", maintenanceCases},
		{"erase", eraseCases},
		{"audit", auditCases},
		{"tree", treeCases},
		{"desk", deskCases},
		{"attachments", attachmentCases},
	} {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, s)
				})
			}
		})
	}
}

// testCase is one conformance test.
type testCase struct {
	name string
	run  func(t *testing.T, s *suite)
}

// suite holds what every case needs.
type suite struct {
	f Factory
}

// open is a fresh store keyed with the fixed test key.
func (s *suite) open(t *testing.T) persistence.Store {
	t.Helper()
	return s.f.Open(t, Keyring(t))
}

// t0 is a fixed, millisecond-aligned base time, so tests can state exact
// orders.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func at(msec int) time.Time { return t0.Add(time.Duration(msec) * time.Millisecond) }
