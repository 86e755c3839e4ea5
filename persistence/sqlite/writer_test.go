package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// holdWriter makes the writer goroutine run a request that waits until the
// returned release is called, so that a test can queue requests behind it
// and know they will all be in the next batch. release waits for the held
// request to finish.
func holdWriter(t *testing.T, st *Store) (release func()) {
	t.Helper()
	running, proceed, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- st.write(context.Background(), "hold the writer", func(*wtx) error {
			close(running)
			<-proceed
			return nil
		})
	}()
	<-running
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(proceed)
			if err := <-done; err != nil {
				t.Errorf("held request: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued polls until n requests wait in the writer's queue.
func waitQueued(t *testing.T, st *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(st.w.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 10s, want %d", len(st.w.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func createN(t *testing.T, st *Store, n int) {
	t.Helper()
	for i := range n {
		if err := st.CreateSession(context.Background(), &persistence.Session{ID: fmt.Sprintf("s%d", i), UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestABatchCommitsOnceAndAConflictFailsOnlyItself(t *testing.T) {
	var batches []int
	var mu sync.Mutex
	st := openInternal(t, func(o *Options) {
		o.OnBatch = func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() }
	})
	const n = 8
	createN(t, st, n)
	ctx := context.Background()
	if err := st.AppendMessage(ctx, &persistence.Message{ID: "first", SessionID: "s0", Seq: 1, Text: "hi", TokensIn: 1}); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	batches = nil
	mu.Unlock()
	before := st.Writes()
	release := holdWriter(t, st)
	// s0 gets its seq 2, the others their seq 1, all in one batch with
	// another writer's seq 1 of s0, which is taken whatever the order.
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n {
		seq := int64(1)
		if i == 0 {
			seq = 2
		}
		wg.Go(func() {
			errs[i] = st.AppendMessage(ctx, &persistence.Message{ID: fmt.Sprintf("m%d", i), SessionID: fmt.Sprintf("s%d", i), Seq: seq, Text: "hi", TokensIn: 1})
		})
	}
	wg.Go(func() {
		errs[n] = st.AppendMessage(ctx, &persistence.Message{ID: "bad", SessionID: "s0", Seq: 1, Text: "taken", TokensIn: 100})
	})
	waitQueued(t, st, n+1)
	release()
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Errorf("append to s%d: %v", i, errs[i])
		}
	}
	if !errors.Is(errs[n], persistence.ErrConflict) {
		t.Errorf("the conflicting append: err = %v, want ErrConflict", errs[n])
	}
	if got := st.Writes() - before; got != 2 { // the held request's, then the batch's
		t.Errorf("%d transactions for the held request and %d appends, want 2", got, n+1)
	}
	mu.Lock()
	if len(batches) != 2 || batches[0] != 1 || batches[1] != n+1 {
		t.Errorf("batch sizes: %v, want [1 %d]: the held request, then all the queued ones", batches, n+1)
	}
	mu.Unlock()
	for i := range n {
		msgs, err := st.ListMessages(ctx, fmt.Sprintf("s%d", i), 0, 0)
		if err != nil || msgs[len(msgs)-1].ID != fmt.Sprintf("m%d", i) {
			t.Errorf("messages of s%d: %+v, %v", i, msgs, err)
		}
	}
	x, err := st.GetSession(ctx, "s0")
	if err != nil {
		t.Fatal(err)
	}
	if x.LastSeq != 2 || x.MessageCount != 2 || x.TokensIn != 2 {
		t.Errorf("s0 after its batch: last_seq %d, count %d, tokens in %d; want 2, 2, 2 (nothing of the conflict)",
			x.LastSeq, x.MessageCount, x.TokensIn)
	}
	if msgs, _ := st.ListMessages(ctx, "s0", 0, 0); len(msgs) != 2 || msgs[0].ID != "first" {
		t.Errorf("messages of s0: %+v, want first and m0", msgs)
	}
}

func TestACallerWhoseContextEndsInTheQueueIsSkipped(t *testing.T) {
	st := openInternal(t)
	createN(t, st, 1)
	release := holdWriter(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- st.AppendMessage(ctx, &persistence.Message{ID: "late", SessionID: "s0", Seq: 1, Text: "hi"})
	}()
	waitQueued(t, st, 1)
	cancel()
	err := <-errc
	if !errors.Is(err, persistence.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("append whose ctx ended in the queue: err = %v, want ErrUnavailable and context.Canceled", err)
	}
	release()
	// The skipped request never ran: the session is as it was.
	if err := st.AppendMessage(context.Background(), &persistence.Message{ID: "next", SessionID: "s0", Seq: 1, Text: "hi"}); err != nil {
		t.Fatalf("append seq 1 after the skipped one: %v", err)
	}
	msgs, err := st.ListMessages(context.Background(), "s0", 0, 0)
	if err != nil || len(msgs) != 1 || msgs[0].ID != "next" {
		t.Errorf("messages: %+v, %v; want only next", msgs, err)
	}
}

func TestCloseRunsWhatIsQueued(t *testing.T) {
	st := openInternal(t)
	const n = 20
	createN(t, st, n)
	release := holdWriter(t, st)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = st.AppendMessage(context.Background(), &persistence.Message{SessionID: fmt.Sprintf("s%d", i), Seq: 1, Text: "hi"})
		})
	}
	waitQueued(t, st, n)
	closed := make(chan error, 1)
	go func() { closed <- st.Close(context.Background()) }()
	// Close refuses new writes at once, though it waits for the queue.
	deadline := time.Now().Add(10 * time.Second)
	for !st.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		time.Sleep(time.Millisecond)
	}
	err := st.CreateSession(context.Background(), &persistence.Session{ID: "after", UserID: "u"})
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("create while closing: err = %v, want ErrUnavailable saying closed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("append queued before Close, to s%d: %v", i, err)
		}
	}
	if err := st.Close(context.Background()); err != nil {
		t.Errorf("second close: %v", err)
	}
}
