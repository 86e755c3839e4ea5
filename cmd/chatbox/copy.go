package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/embedded"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/sqlite"
)

// copyPage is how many messages the copy reads and writes per round trip.
const copyPage = 1000

// copyStores is `chatbox copy -from SRC -to DST`: it copies every session
// and message from one store to another (see docs/data.md, "Moving between
// stores"). SRC and DST are each a MongoDB URI or a data_dir; a data_dir
// holding the FerretDB store of Chatbox v1.0 can be a source, which is how
// such a directory is brought to v1.1.
//
// It is resumable: a session the destination already holds whole is
// skipped, anything else is written again over what is there. Every session
// is verified by counting its messages in the destination. Run it with the
// servers stopped, or run it again after they stop, for what they wrote
// meanwhile.
func copyStores(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("copy", stderr)
	path := fs.String("config", "", "config file (keys, database name, durability)")
	from := fs.String("from", "", "source: a mongodb:// URI or a data_dir")
	to := fs.String("to", "", "destination: a mongodb:// URI or a data_dir")
	database := fs.String("database", "", "MongoDB database name on either side (default: storage.database)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		fs.Usage()
		return errors.New("copy: -from and -to are required")
	}
	if *from == *to {
		return errors.New("copy: -from and -to name the same store")
	}
	cfg, err := config.Load(*path, os.Getenv)
	if err != nil {
		return err
	}
	if *database != "" {
		cfg.Storage.Database = *database
	}
	log := newLogger(cfg, stderr)

	src, closeSrc, err := openCopySide(ctx, cfg, *from, log, true)
	if err != nil {
		return fmt.Errorf("copy: open -from: %w", err)
	}
	defer closeSrc()
	dst, closeDst, err := openCopySide(ctx, cfg, *to, log, false)
	if err != nil {
		return fmt.Errorf("copy: open -to: %w", err)
	}
	defer closeDst()
	imp, ok := dst.(persistence.Importer)
	if !ok {
		return fmt.Errorf("copy: the %T store cannot import", dst)
	}

	start := time.Now()
	c := copier{src: src, dst: dst, imp: imp}
	err = c.run(ctx, func() {
		fmt.Fprintf(stdout, "copy: %d sessions, %d messages so far (%d sessions already there)\n", c.sessions, c.messages, c.skipped)
	})
	fmt.Fprintf(stdout, "copied %d sessions and %d messages, %d sessions were already there (%s)\n",
		c.sessions, c.messages, c.skipped, time.Since(start).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("copy stopped: %w; what is copied stays copied, run it again to continue", err)
	}
	fmt.Fprintln(stdout, "every session in the destination holds as many messages as in the source")
	return nil
}

// openCopySide opens one side of a copy: a MongoDB URI, or a data_dir with
// its own dev-mode key when no key is configured. A source data_dir may
// hold the FerretDB store of v1.0, which is read through an in-process
// FerretDB on those very files.
func openCopySide(ctx context.Context, base *config.Config, spec string, log *slog.Logger, source bool) (persistence.Store, func(), error) {
	side := *base
	if strings.HasPrefix(spec, "mongodb://") || strings.HasPrefix(spec, "mongodb+srv://") {
		side.Storage.MongoURI = spec
	} else {
		side.Storage.MongoURI, side.Storage.DataDir = "", spec
	}
	if err := side.PrepareSecrets(); err != nil {
		return nil, nil, err
	}
	if side.Storage.MongoURI == "" && source {
		if _, old, err := sqlite.DetectOldStore(storeDir(&side)); err != nil {
			return nil, nil, err
		} else if old {
			return openLegacyStore(ctx, &side, log)
		}
	}
	return openStore(ctx, &side, log, nil)
}

// openLegacyStore reads a v1.0 data_dir: FerretDB in-process on its files,
// through the MongoDB store. It is only ever a source of `chatbox copy`.
func openLegacyStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (persistence.Store, func(), error) {
	keys, err := keyring(cfg)
	if err != nil {
		return nil, nil, err
	}
	srv, err := embedded.Start(ctx, storeDir(cfg), log)
	if err != nil {
		return nil, nil, fmt.Errorf("start FerretDB on the v1.0 store: %w", err)
	}
	st, err := mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: cfg.Storage.Database, Keyring: keys, Timeout: cfg.Storage.Timeout.Duration, Logger: log})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return st, func() { st.Close(context.Background()); srv.Close() }, nil
}

// copier walks the source's sessions, oldest first, and copies each whole.
type copier struct {
	src, dst persistence.Store
	imp      persistence.Importer

	sessions, messages, skipped int64
}

func (c *copier) run(ctx context.Context, progress func()) error {
	filter := persistence.AdminFilter{Sort: "created_at", Order: "asc"}
	page := persistence.Page{Limit: 200}
	last := time.Now()
	for {
		list, next, err := c.src.ListAllSessions(ctx, filter, page)
		if err != nil {
			return fmt.Errorf("list the source's sessions: %w", err)
		}
		for i := range list {
			if err := c.session(ctx, &list[i]); err != nil {
				return fmt.Errorf("session %s: %w", list[i].ID, err)
			}
			if time.Since(last) >= time.Second {
				last = time.Now()
				progress()
			}
		}
		if next == "" {
			return nil
		}
		page.Cursor = next
	}
}

// session copies one session: its header first, then its messages, then
// counts them in the destination. A session whose header and message count
// already match is skipped, so an interrupted copy resumes where it was.
func (c *copier) session(ctx context.Context, s *persistence.Session) error {
	have, err := c.dst.GetSession(ctx, s.ID)
	switch {
	case err == nil && have.LastSeq == s.LastSeq && have.Version == s.Version:
		n, err := countMessages(ctx, c.dst, s.ID)
		if err != nil {
			return err
		}
		if n == s.MessageCount {
			c.skipped++
			return nil
		}
	case err != nil && !errors.Is(err, persistence.ErrNotFound):
		return fmt.Errorf("look it up in the destination: %w", err)
	}

	if err := c.imp.PutSession(ctx, s); err != nil {
		return fmt.Errorf("write the header: %w", err)
	}
	var copied int64
	for after := int64(0); ; {
		msgs, err := c.src.ListMessages(ctx, s.ID, after, copyPage)
		if err != nil {
			return fmt.Errorf("read messages after seq %d: %w", after, err)
		}
		for _, m := range msgs {
			if m.Unreadable {
				// Copying would store its empty text under a fresh key and
				// lose the original for good.
				return fmt.Errorf("message seq %d cannot be decrypted; add its key to storage.previous_encryption_keys", m.Seq)
			}
		}
		if len(msgs) > 0 {
			if err := c.imp.PutMessages(ctx, msgs); err != nil {
				return fmt.Errorf("write messages after seq %d: %w", after, err)
			}
			after = msgs[len(msgs)-1].Seq
			copied += int64(len(msgs))
		}
		if len(msgs) < copyPage {
			break
		}
	}
	n, err := countMessages(ctx, c.dst, s.ID)
	if err != nil {
		return err
	}
	if n != copied {
		return fmt.Errorf("verify: the destination holds %d messages, %d were copied", n, copied)
	}
	c.sessions++
	c.messages += copied
	return nil
}

// countMessages counts a session's stored messages in st.
func countMessages(ctx context.Context, st persistence.Store, sessionID string) (int64, error) {
	var n int64
	for after := int64(0); ; {
		msgs, err := st.ListMessages(ctx, sessionID, after, copyPage)
		if err != nil {
			return 0, fmt.Errorf("count the destination's messages: %w", err)
		}
		n += int64(len(msgs))
		if len(msgs) < copyPage {
			return n, nil
		}
		after = msgs[len(msgs)-1].Seq
	}
}
