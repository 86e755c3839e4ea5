package storetest

import (
	"context"
	"flag"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// RapidChecks is how many cases the suite's property tries, where every
// check talks to a database, unless -rapid.checks or RAPID_CHECKS says
// otherwise.
const RapidChecks = 15

var rapidOnce sync.Once

// limitRapidChecks sets rapid's number of checks to RapidChecks unless it
// was given explicitly. rapid has no per-call option, only its flag, and
// reads it in every Check: this must happen before any check runs (Main
// does it first), once.
func limitRapidChecks() {
	rapidOnce.Do(func() {
		f := flag.Lookup("rapid.checks")
		if f == nil || os.Getenv("RAPID_CHECKS") != "" {
			return
		}
		explicit := false
		flag.Visit(func(g *flag.Flag) { explicit = explicit || g == f })
		if !explicit {
			_ = f.Value.Set(strconv.Itoa(RapidChecks))
		}
	})
}

func mustCreate(t testing.TB, st persistence.Store, s persistence.Session) *persistence.Session {
	t.Helper()
	if err := st.CreateSession(context.Background(), &s); err != nil {
		t.Fatalf("create session %s: %v", s.ID, err)
	}
	return &s
}

// message is a complete user message at seq, created at(seq).
func message(sessionID string, seq int64, text string) *persistence.Message {
	return &persistence.Message{
		SessionID: sessionID, Seq: seq, Role: persistence.RoleUser, Author: "u",
		Text: text, Status: persistence.StatusComplete, CreatedAt: at(int(seq)),
	}
}

func mustAppend(t testing.TB, st persistence.Store, sessionID string, seq int64, text string) *persistence.Message {
	t.Helper()
	m := message(sessionID, seq, text)
	if err := st.AppendMessage(context.Background(), m); err != nil {
		t.Fatalf("append %s/%d: %v", sessionID, seq, err)
	}
	return m
}

func mustGet(t testing.TB, st persistence.Store, id string) *persistence.Session {
	t.Helper()
	s, err := st.GetSession(context.Background(), id)
	if err != nil {
		t.Fatalf("get session %s: %v", id, err)
	}
	return s
}

func mustList(t testing.TB, st persistence.Store, sessionID string) []persistence.Message {
	t.Helper()
	msgs, err := st.ListMessages(context.Background(), sessionID, 0, 1000)
	if err != nil {
		t.Fatalf("list messages of %s: %v", sessionID, err)
	}
	return msgs
}

func ids(ss []persistence.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func seqs(ms []persistence.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// keyring builds a keyring or fails t.
func keyring(t testing.TB, current []byte, previous ...[]byte) *persistence.Keyring {
	t.Helper()
	k, err := persistence.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
