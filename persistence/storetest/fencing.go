package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// raceRounds is how many times each race is run: a fence that holds by
// luck once in a while fails here.
const raceRounds = 50

// race runs a and b at once, released together, and returns their errors.
func race(a, b func() error) (errA, errB error) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { <-start; errA = a() })
	wg.Go(func() { <-start; errB = b() })
	close(start)
	wg.Wait()
	return errA, errB
}

// oneWins checks that exactly one of two racing writes succeeded and the
// other lost with ErrConflict, and says which won (0 or 1).
func oneWins(t *testing.T, round int, errA, errB error) int {
	t.Helper()
	switch {
	case errA == nil && errors.Is(errB, persistence.ErrConflict):
		return 0
	case errB == nil && errors.Is(errA, persistence.ErrConflict):
		return 1
	}
	t.Fatalf("round %d: errors %v and %v, want exactly one nil and one ErrConflict", round, errA, errB)
	return -1
}

var fencingCases = []testCase{
	{"two writers racing to append at one seq: exactly one wins, every time", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		other := s.f.Reopen(t, st, Keyring(t)) // as a second node would
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		var winners []persistence.Message
		for seq := int64(1); seq <= raceRounds; seq++ {
			a, b := message("s1", seq, fmt.Sprintf("a%d", seq)), message("s1", seq, fmt.Sprintf("b%d", seq))
			a.TokensIn, b.TokensIn = 1, 1
			errA, errB := race(
				func() error { return st.AppendMessage(ctx, a) },
				func() error { return other.AppendMessage(ctx, b) })
			winners = append(winners, *[]*persistence.Message{a, b}[oneWins(t, int(seq), errA, errB)])
		}
		got := mustList(t, st, "s1")
		if len(got) != raceRounds {
			t.Fatalf("listed %d messages after %d races, want %d", len(got), raceRounds, raceRounds)
		}
		for i, m := range got {
			if !reflect.DeepEqual(m, winners[i]) {
				t.Fatalf("seq %d holds %+v, want the winner %+v", i+1, m, winners[i])
			}
		}
		if x := mustGet(t, st, "s1"); x.LastSeq != raceRounds || x.MessageCount != raceRounds || x.TokensIn != raceRounds {
			t.Fatalf("session after the races: last_seq %d, count %d, tokens in %d; want %d each", x.LastSeq, x.MessageCount, x.TokensIn, raceRounds)
		}
	}},
	{"two writers racing to update one version: exactly one wins, every time", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		other := s.f.Reopen(t, st, Keyring(t))
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		for round := range raceRounds {
			a, b := mustGet(t, st, "s1"), mustGet(t, st, "s1")
			version := a.Version
			a.Title, a.Mode, a.AdminID = fmt.Sprintf("a%d", round), persistence.ModeHuman, "admin-a"
			b.Title, b.Mode, b.AdminID = fmt.Sprintf("b%d", round), persistence.ModeBot, ""
			errA, errB := race(
				func() error { return st.UpdateSession(ctx, a) },
				func() error { return other.UpdateSession(ctx, b) })
			won, lost := a, b
			if oneWins(t, round, errA, errB) == 1 {
				won, lost = b, a
			}
			if won.Version != version+1 || lost.Version != version {
				t.Fatalf("round %d: versions %d (won) and %d (lost), from %d", round, won.Version, lost.Version, version)
			}
			if got := mustGet(t, st, "s1"); *got != *won {
				t.Fatalf("round %d: stored %+v\nwant the winner %+v", round, *got, *won)
			}
		}
	}},
	{"writers racing for each next seq keep exactly what was acknowledged", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		const writers, target = 4, 30
		var (
			mu    sync.Mutex
			acked = map[string]int64{} // message id → seq; guarded by mu
		)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for attempt := 0; ; attempt++ {
					x, err := st.GetSession(ctx, "s1")
					if err != nil {
						t.Errorf("writer %d: get: %v", w, err)
						return
					}
					if x.LastSeq >= target {
						return
					}
					m := message("s1", x.LastSeq+1, fmt.Sprintf("w%d a%d", w, attempt))
					m.TokensOut = 1
					switch err := st.AppendMessage(ctx, m); {
					case err == nil:
						mu.Lock()
						acked[m.ID] = m.Seq
						mu.Unlock()
					case errors.Is(err, persistence.ErrConflict):
						// Lost the race: reload and go again.
					default:
						t.Errorf("writer %d: append: %v", w, err)
						return
					}
				}
			})
		}
		wg.Wait()
		x := mustGet(t, st, "s1")
		msgs := mustList(t, st, "s1")
		if x.LastSeq != target || len(msgs) != target || len(acked) != target || x.MessageCount != target || x.TokensOut != target {
			t.Fatalf("last_seq %d, count %d, tokens out %d, %d messages listed, %d acknowledged; want %d each",
				x.LastSeq, x.MessageCount, x.TokensOut, len(msgs), len(acked), target)
		}
		for i, m := range msgs {
			if m.Seq != int64(i+1) || acked[m.ID] != m.Seq {
				t.Fatalf("message %d: seq %d, acknowledged at %d", i, m.Seq, acked[m.ID])
			}
		}
	}},
	{"a header update racing appends keeps both", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		for round := range raceRounds / 5 {
			x := mustGet(t, st, "s1")
			x.Title = fmt.Sprintf("title %d", round)
			m := message("s1", x.LastSeq+1, "text")
			m.TokensIn = 2
			errU, errA := race(
				func() error { return st.UpdateSession(ctx, x) },
				func() error { return st.AppendMessage(ctx, m) })
			if errU != nil || errA != nil {
				t.Fatalf("round %d: update %v, append %v; want both to succeed", round, errU, errA)
			}
			got := mustGet(t, st, "s1")
			if got.Title != x.Title || got.LastSeq != m.Seq || got.TokensIn != 2*m.Seq || got.Version != x.Version {
				t.Fatalf("round %d: %+v; want title %q, last_seq %d, tokens in %d, version %d", round, *got, x.Title, m.Seq, 2*m.Seq, x.Version)
			}
		}
	}},
}
