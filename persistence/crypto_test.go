package persistence_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/chatbox/chatbox/persistence"
	"pgregory.net/rapid"
)

func testKey(t testing.TB, b byte) []byte {
	t.Helper()
	return bytes.Repeat([]byte{b}, persistence.KeySize)
}

func testKeyring(t testing.TB, current []byte, previous ...[]byte) *persistence.Keyring {
	t.Helper()
	k, err := persistence.NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("new keyring: %v", err)
	}
	return k
}

func TestNewKeyringRejectsBadKeys(t *testing.T) {
	tests := []struct {
		name     string
		current  []byte
		previous [][]byte
	}{
		{"nil current", nil, nil},
		{"short current", make([]byte, 16), nil},
		{"long current", make([]byte, 33), nil},
		{"short previous", make([]byte, 32), [][]byte{make([]byte, 31)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := persistence.NewKeyring(tt.current, tt.previous...); err == nil {
				t.Fatal("NewKeyring accepted a key that is not 32 bytes")
			}
		})
	}
}

func TestKeyIDIsDerivedFromKey(t *testing.T) {
	k := testKeyring(t, testKey(t, 1))
	if got, want := k.CurrentKeyID(), persistence.KeyID(testKey(t, 1)); got != want {
		t.Fatalf("CurrentKeyID = %q, want %q", got, want)
	}
	if len(k.CurrentKeyID()) != 16 {
		t.Fatalf("key id %q is not 8 hex-encoded bytes", k.CurrentKeyID())
	}
	if persistence.KeyID(testKey(t, 1)) == persistence.KeyID(testKey(t, 2)) {
		t.Fatal("two keys share an id")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := testKeyring(t, testKey(t, 7))
	rapid.Check(t, func(rt *rapid.T) {
		plain := rapid.SliceOf(rapid.Byte()).Draw(rt, "plain")
		ad := rapid.SliceOf(rapid.Byte()).Draw(rt, "ad")
		id, ct := k.Seal(plain, ad)
		if id != k.CurrentKeyID() {
			rt.Fatalf("Seal used key %q, want current %q", id, k.CurrentKeyID())
		}
		if len(plain) >= 8 && bytes.Contains(ct, plain) {
			rt.Fatal("ciphertext contains the plaintext")
		}
		got, err := k.Open(id, ct, ad)
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		if !bytes.Equal(got, plain) {
			rt.Fatalf("round trip = %x, want %x", got, plain)
		}
	})
}

func TestOpenRejectsTampering(t *testing.T) {
	k := testKeyring(t, testKey(t, 7))
	ad := persistence.MessageAD("s1", 3)
	id, ct := k.Seal([]byte("hello, world"), ad)

	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := k.Open(id, bad, ad); !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("flipped byte %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	for _, n := range []int{0, 1, 12, 27} {
		if _, err := k.Open(id, ct[:n], ad); !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
}

func TestOpenRejectsWrongAD(t *testing.T) {
	k := testKeyring(t, testKey(t, 7))
	id, ct := k.Seal([]byte("hello"), persistence.MessageAD("s1", 3))
	for name, ad := range map[string][]byte{
		"other seq":     persistence.MessageAD("s1", 4),
		"other session": persistence.MessageAD("s2", 3),
		"title":         persistence.TitleAD("s1"),
		"empty":         nil,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := k.Open(id, ct, ad); !errors.Is(err, persistence.ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestSealNeverRepeatsANonce(t *testing.T) {
	const n = 100_000
	k := testKeyring(t, testKey(t, 7))
	seen := make(map[[12]byte]struct{}, n)
	for range n {
		_, ct := k.Seal(nil, nil)
		nonce := [12]byte(ct[:12])
		if _, dup := seen[nonce]; dup {
			t.Fatalf("nonce %x repeated after %d seals", nonce, len(seen))
		}
		seen[nonce] = struct{}{}
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(t, 1), testKey(t, 2)
	before := testKeyring(t, oldKey)
	oldID, oldCT := before.Seal([]byte("written before rotation"), []byte("ad"))

	after := testKeyring(t, newKey, oldKey)
	got, err := after.Open(oldID, oldCT, []byte("ad"))
	if err != nil {
		t.Fatalf("open old ciphertext after rotation: %v", err)
	}
	if string(got) != "written before rotation" {
		t.Fatalf("opened %q", got)
	}
	if id, _ := after.Seal([]byte("x"), nil); id != persistence.KeyID(newKey) || id == oldID {
		t.Fatalf("Seal after rotation used key %q, want the new key %q", id, persistence.KeyID(newKey))
	}
}

func TestOpenMissingKey(t *testing.T) {
	retired := testKeyring(t, testKey(t, 1))
	id, ct := retired.Seal([]byte("secret"), nil)

	k := testKeyring(t, testKey(t, 2))
	_, err := k.Open(id, ct, nil)
	if !errors.Is(err, persistence.ErrKeyMissing) {
		t.Fatalf("err = %v, want ErrKeyMissing", err)
	}
	if errors.Is(err, persistence.ErrCorrupt) {
		t.Fatal("a missing key must not look like tampering")
	}
}

func TestAssociatedData(t *testing.T) {
	if got := string(persistence.MessageAD("abc", 42)); got != "msg\x00abc\x0042" {
		t.Fatalf("MessageAD = %q", got)
	}
	if got := string(persistence.TitleAD("abc")); got != "title\x00abc" {
		t.Fatalf("TitleAD = %q", got)
	}
	// A message of session "title" must never share AD with a title.
	if string(persistence.MessageAD("title", 5)) == string(persistence.TitleAD("5")) {
		t.Fatal("message and title associated data collide")
	}
}

func benchmarkKeyring(b *testing.B) (*persistence.Keyring, []byte, []byte) {
	key := make([]byte, persistence.KeySize)
	rand.Read(key)
	k := testKeyring(b, key)
	plain := make([]byte, 1024)
	rand.Read(plain)
	return k, plain, persistence.MessageAD("0123456789abcdef", 12345)
}

func BenchmarkSeal(b *testing.B) {
	k, plain, ad := benchmarkKeyring(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		k.Seal(plain, ad)
	}
}

func BenchmarkOpen(b *testing.B) {
	k, plain, ad := benchmarkKeyring(b)
	id, ct := k.Seal(plain, ad)
	b.ReportAllocs()
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := k.Open(id, ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}
