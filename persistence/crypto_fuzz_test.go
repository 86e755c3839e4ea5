package persistence_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// FuzzOpen: arbitrary key ids, ciphertexts and associated data never open
// and are classified (missing key or corrupt); what Seal makes opens to
// its plaintext, and not once a bit of it or its associated data changes.
func FuzzOpen(f *testing.F) {
	k := testKeyring(f, testKey(f, 1), testKey(f, 2))
	old := testKeyring(f, testKey(f, 2))
	id, ct := old.Seal([]byte("hello"), persistence.MessageAD("s1", 1))
	f.Add(id, ct, persistence.MessageAD("s1", 1), []byte("hello"))
	f.Add(k.CurrentKeyID(), []byte{}, []byte{}, []byte{})
	f.Add("no-such-key", []byte("0123456789abcdef0123456789"), persistence.TitleAD("s1"), []byte("title"))
	f.Fuzz(func(t *testing.T, keyID string, ciphertext, ad, plain []byte) {
		if _, err := k.Open(keyID, ciphertext, ad); err != nil &&
			!errors.Is(err, persistence.ErrKeyMissing) && !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("unclassified error %v", err)
		}
		id, sealed := k.Seal(plain, ad)
		got, err := k.Open(id, sealed, ad)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
		if _, err := k.Open(id, sealed, append(bytes.Clone(ad), 0)); !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("opened with other associated data: %v", err)
		}
		flipped := bytes.Clone(sealed)
		flipped[len(plain)%len(flipped)] ^= 1
		if _, err := k.Open(id, flipped, ad); !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("opened a damaged ciphertext: %v", err)
		}
	})
}
