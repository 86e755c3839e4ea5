package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// ErrOldStore is returned (wrapped, with a message naming the file and
// saying what to do) when Options.Dir holds the database of the
// FerretDB-based store of Chatbox v1.0, which this store never opens,
// modifies or ignores.
var ErrOldStore = errors.New("data_dir holds the FerretDB store of Chatbox v1.0")

// ferretMarker is the table every FerretDB v1 SQLite database has. Its name
// is in the CREATE TABLE text that sqlite_schema stores, in the main file
// or, before a checkpoint, in the -wal file.
var ferretMarker = []byte("_ferretdb_collections")

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// DetectOldStore reports whether dir holds a FerretDB v1 SQLite database:
// a *.sqlite file that is an SQLite database containing the table
// _ferretdb_collections. It reads the files as bytes and never opens
// them as databases, so it changes nothing, not even a lock or a -shm file.
// A dir that does not exist holds no old store.
func DetectOldStore(dir string) (file string, found bool, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if err != nil {
		return "", false, fmt.Errorf("look for an old store in %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		ok, err := isFerretDB(f)
		if err != nil {
			return "", false, fmt.Errorf("look for an old store in %s: %w", dir, err)
		}
		if ok {
			return f, true, nil
		}
	}
	return "", false, nil
}

// isFerretDB reports whether path is an SQLite database whose file or WAL
// holds the FerretDB marker.
func isFerretDB(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return false, err
	} else if !st.Mode().IsRegular() {
		return false, nil
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil // too short to be a database
		}
		return false, err
	}
	if !bytes.Equal(head, sqliteHeader) {
		return false, nil
	}
	if ok, err := contains(f, ferretMarker); err != nil || ok {
		return ok, err
	}
	wal, err := os.Open(path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer wal.Close()
	return contains(wal, ferretMarker)
}

// contains reads r to the end or to the first occurrence of marker.
func contains(r io.Reader, marker []byte) (bool, error) {
	buf := make([]byte, 64<<10)
	have := 0 // bytes at the start of buf: the tail of the previous read
	for {
		n, err := r.Read(buf[have:])
		have += n
		if bytes.Contains(buf[:have], marker) {
			return true, nil
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// Keep what could be the start of a marker cut by the next read.
		if keep := len(marker) - 1; have > keep {
			copy(buf, buf[have-keep:have])
			have = keep
		}
	}
}

// oldStoreError says what was found and what to do about it.
func oldStoreError(dir, file string) error {
	return fmt.Errorf("open store: %s: %w: copy it with `chatbox copy -from %s -to <new dir or mongodb URI>` and point storage.data_dir at the new one",
		file, ErrOldStore, dir)
}
