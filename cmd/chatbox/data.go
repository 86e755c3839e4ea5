package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/persistence"
)

// rekey re-encrypts every stored text that is not under the current key;
// see docs/data.md, "Rotating the key". It fails (exit status 1) when some
// records cannot be read, so that the operator does not remove a key that
// is still needed.
func rekey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rekey", stderr)
	path := fs.String("config", "", "config file")
	batch := fs.Int("batch", persistence.DefaultRekeyBatch, "records read and rewritten per round trip")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch <= 0 {
		return fmt.Errorf("rekey: -batch must be positive, got %d", *batch)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(ctx, cfg, newLogger(cfg, stderr), nil)
	if err != nil {
		return err
	}
	defer closeStore()
	st, ok := store.(persistence.Rekeyer)
	if !ok {
		return fmt.Errorf("rekey: the %T store cannot rekey", store)
	}

	current, _, err := cfg.EncryptionKeys()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rekey: re-encrypting under key %s, %d records per batch\n", persistence.KeyID(current), *batch)
	start := time.Now()
	var last time.Time
	res, err := st.Rekey(ctx, *batch, func(p persistence.RekeyProgress) {
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(stdout, "rekey: %s: scanned %d, rekeyed %d messages, %d titles, %d unreadable\n",
			p.Phase, p.Scanned, p.Messages, p.Titles, p.Unreadable)
	})
	fmt.Fprintf(stdout, "rekeyed %d messages, %d titles, %d unreadable (%s)\n",
		res.Messages, res.Titles, res.UnreadableCount, time.Since(start).Round(time.Millisecond))
	if res.Changed > 0 {
		fmt.Fprintf(stdout, "%d records were rewritten by a server meanwhile and left as it wrote them\n", res.Changed)
	}
	for _, u := range res.Unreadable {
		what := fmt.Sprintf("message seq %d", u.Seq)
		if u.Title() {
			what = "title"
		}
		fmt.Fprintf(stdout, "unreadable: session %s %s: key %s, %s\n", u.SessionID, what, u.KeyID, reasonText(u.Reason))
	}
	if more := res.UnreadableCount - int64(len(res.Unreadable)); more > 0 {
		fmt.Fprintf(stdout, "unreadable: … and %d more\n", more)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("rekey interrupted: what is done stays done; run it again to continue")
		}
		return fmt.Errorf("rekey stopped: %w; what is done stays done, run it again to continue", err)
	}
	if res.UnreadableCount > 0 {
		return fmt.Errorf("rekey: %d records cannot be read and were left as they are; "+
			"add their keys to storage.previous_encryption_keys and run again, or accept them as lost", res.UnreadableCount)
	}
	if stale := res.Remaining - res.UnreadableCount; stale > 0 {
		return fmt.Errorf("rekey: %d records were written under an older key meanwhile; "+
			"give every server the new key, then run again", stale)
	}
	fmt.Fprintln(stdout, "every record is under the current key; the previous keys can be removed")
	return nil
}

func reasonText(reason string) string {
	if reason == "key_missing" {
		return "key not configured"
	}
	return "does not authenticate (damaged or moved)"
}

// migrate creates the schema and the indexes the queries rely on and lists
// the indexes; it does not serve.
func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	path := fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(ctx, cfg, newLogger(cfg, stderr), nil)
	if err != nil {
		return err
	}
	defer closeStore()
	m, ok := store.(persistence.Migrator)
	if !ok {
		return fmt.Errorf("migrate: the %T store has no schema to migrate", store)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	indexes, err := m.Indexes(ctx)
	if err != nil {
		return fmt.Errorf("migrate: list the indexes: %w", err)
	}
	fmt.Fprintf(stdout, "migrate: indexes of the %s\n", storeName(cfg))
	for _, ix := range indexes {
		unique := ""
		if ix.Unique {
			unique = " unique"
		}
		fmt.Fprintf(stdout, "%s: %s {%s}%s\n", ix.Table, ix.Name, ix.Keys, unique)
	}
	return nil
}

// storeName says which store cfg selects, for people; never the URI, which
// may hold a password.
func storeName(cfg *config.Config) string {
	if cfg.Storage.MongoURI != "" {
		return "MongoDB database " + cfg.Storage.Database
	}
	return "embedded store in " + storeDir(cfg)
}
