package actors

// Flushers write outboxes into their sockets. An outbox needs one only
// while it holds frames, so an idle connection holds no goroutine; but
// starting a goroutine for every burst of a streaming reply costs an
// allocation and a goroutine start per frame on a fast socket. So a few
// flushers live as long as the hub and take outboxes from flushq; when all
// of them are busy (writing to slow sockets, say) a flush gets a goroutine
// of its own, so no socket waits for another.

// pooledFlushers is how many flushers live as long as the hub. A reply's
// delta goes to every device of its user in one burst, which needs as many
// idle flushers at once; parked, each costs a small stack, once per hub.
const pooledFlushers = 64

// startFlushers starts the pooled flushers; Hub.Start calls it.
func (h *Hub) startFlushers() {
	h.flushq = make(chan *outbox)
	for range pooledFlushers {
		h.goroutines.Go(h.flusher)
	}
}

// flusher flushes the outboxes it is handed until the hub's goroutines
// stop. An outbox it has taken is always flushed.
func (h *Hub) flusher() {
	stopping := h.goroutines.Stopping()
	for {
		select {
		case o := <-h.flushq:
			o.flush()
		case <-stopping:
			return
		}
	}
}

// flush has o written by an idle pooled flusher, or else by a goroutine of
// its own, bound once as a task so that starting it allocates nothing. It
// reports false once the hub's goroutines are stopped. Only the caller that
// push told to start a flusher calls it, and the flusher it starts comes
// before the next such caller, so o.flusher is written by one goroutine at
// a time.
func (h *Hub) flush(o *outbox) bool {
	select {
	case h.flushq <- o:
		return true
	default:
		if o.flusher == nil {
			o.flusher = h.goroutines.Task(o.flush)
		}
		return o.flusher.Go()
	}
}
