package persistence

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
)

// KeySize is the length of an encryption key: AES-256.
const KeySize = 32

// Keyring encrypts message text and session titles at rest with AES-256-GCM.
// Seal always uses the current key; Open accepts the current key and every
// previous one, so keys can be rotated without rewriting stored records.
//
// A key's id is derived from the key itself (the first 8 bytes of its
// SHA-256, in hex), so configuration lists keys only and ids cannot drift
// from the keys they name. The id is stored beside each ciphertext.
//
// Each ciphertext is random nonce (12 bytes) || sealed text || tag (16
// bytes). With random 96-bit nonces one key must not seal more than 2^32
// texts; every checkpoint of a streamed reply is a Seal, so rotate keys well
// before that.
//
// A Keyring is immutable after NewKeyring and safe for concurrent use.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewKeyring builds a keyring that seals with current and opens with current
// and any of previous. Every key must be exactly KeySize bytes.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD, 1+len(previous))}
	id, err := k.add(current)
	if err != nil {
		return nil, fmt.Errorf("current key: %w", err)
	}
	k.current = id
	for i, key := range previous {
		if _, err := k.add(key); err != nil {
			return nil, fmt.Errorf("previous key %d: %w", i, err)
		}
	}
	return k, nil
}

func (k *Keyring) add(key []byte) (string, error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	id := KeyID(key)
	if _, ok := k.aeads[id]; ok {
		return id, nil // the same key listed twice is harmless
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return "", err
	}
	k.aeads[id] = aead
	return id, nil
}

// KeyID is the id under which key's ciphertexts are stored: the first 8
// bytes of SHA-256(key), hex-encoded. It reveals nothing useful about a
// 256-bit key.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// CurrentKeyID is the id of the key Seal uses.
func (k *Keyring) CurrentKeyID() string { return k.current }

// Seal encrypts plaintext under the current key, bound to ad (see MessageAD
// and TitleAD). The nonce is fresh from crypto/rand for every call.
func (k *Keyring) Seal(plaintext, ad []byte) (keyID string, ciphertext []byte) {
	aead := k.aeads[k.current]
	out := make([]byte, 0, len(plaintext)+aead.Overhead())
	return k.current, aead.Seal(out, nil, plaintext, ad)
}

// Open decrypts a ciphertext produced by Seal under keyID with the same ad.
// An unknown keyID wraps ErrKeyMissing; a ciphertext that does not
// authenticate (damaged, or moved to a record with other ad) wraps
// ErrCorrupt.
func (k *Keyring) Open(keyID string, ciphertext, ad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("open with key %s: %w", keyID, ErrKeyMissing)
	}
	if len(ciphertext) < aead.Overhead() {
		return nil, fmt.Errorf("open with key %s: %w: %d bytes is too short", keyID, ErrCorrupt, len(ciphertext))
	}
	plain, err := aead.Open(nil, nil, ciphertext, ad)
	if err != nil {
		return nil, fmt.Errorf("open with key %s: %w", keyID, ErrCorrupt)
	}
	return plain, nil
}

// MessageAD is the associated data of a message's text: "msg", a NUL, the
// session id, a NUL and the decimal seq. It ties a ciphertext to its record,
// so a ciphertext copied onto another message (or onto a title, whose AD
// starts differently) fails to open instead of showing its text there.
func MessageAD(sessionID string, seq int64) []byte {
	b := make([]byte, 0, len("msg\x00")+len(sessionID)+1+20)
	b = append(b, "msg\x00"...)
	b = append(b, sessionID...)
	b = append(b, 0)
	return strconv.AppendInt(b, seq, 10)
}

// TitleAD is the associated data of a session's title: "title", a NUL and
// the session id.
func TitleAD(sessionID string) []byte {
	b := make([]byte, 0, len("title\x00")+len(sessionID))
	b = append(b, "title\x00"...)
	return append(b, sessionID...)
}

// LogUnreadable logs a record whose ciphertext could not be opened, for a
// store that returns it with empty text: a warning when its key is not
// configured, an error when it does not authenticate. attrs name the
// record, never its contents.
func LogUnreadable(ctx context.Context, log *slog.Logger, err error, msg string, attrs ...any) {
	level, reason := slog.LevelWarn, "key_missing"
	if !errors.Is(err, ErrKeyMissing) {
		level, reason = slog.LevelError, "corrupt"
	}
	log.Log(ctx, level, msg, append(attrs, "reason", reason)...)
}
