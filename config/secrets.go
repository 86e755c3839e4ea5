package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length in bytes of an encryption key (AES-256).
const KeySize = 32

// minProductionSecret is the shortest HS256 secret production accepts:
// HMAC-SHA256 is only as strong as its key, and a short one can be
// brute-forced offline from any token.
const minProductionSecret = 32

// Files under data_dir that keep dev-mode secrets across restarts.
const (
	jwtSecretFile     = "jwt_secret"
	encryptionKeyFile = "encryption_key"
)

// GenerateKey returns a fresh random encryption key, base64 (standard
// encoding) of KeySize bytes, as "chatbox keygen" prints it.
func GenerateKey() (string, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// PrepareSecrets makes sure the JWT secret and the encryption key are
// usable; call it after Load.
//
// In dev mode a missing auth.jwt_secret (when no jwt_public_key_file is set)
// and a missing storage.encryption_key are read from data_dir/jwt_secret and
// data_dir/encryption_key, or generated once and written there (mode 0600,
// data_dir created 0700), so tokens and stored messages survive restarts.
//
// In production mode nothing is generated: an empty or placeholder secret is
// refused, as is a jwt_secret shorter than 32 bytes. Nor in cluster mode: a
// key generated under one node's data_dir would make every other node read
// that node's messages as unreadable and refuse its tokens, so both must be
// configured, the same on every node. Errors name the key and never
// include its value.
func (c *Config) PrepareSecrets() error {
	if c.Server.Mode == ModeProduction {
		return c.checkProductionSecrets()
	}
	if c.Cluster.Enabled {
		var p problems
		if c.Auth.JWTSecret == "" && c.Auth.JWTPublicKeyFile == "" {
			p.add("auth.jwt_secret", "must be set with cluster.enabled, the same on every node (or set auth.jwt_public_key_file)")
		}
		if c.Storage.EncryptionKey == "" {
			p.add("storage.encryption_key", `must be set with cluster.enabled, the same on every node; generate one with "chatbox keygen"`)
		}
		if err := p.err(); err != nil {
			return err
		}
	}
	if c.Auth.JWTSecret == "" && c.Auth.JWTPublicKeyFile == "" {
		s, err := devSecret(c.Storage.DataDir, jwtSecretFile, func(s string) error {
			if s == "" {
				return errors.New("is empty")
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("auth.jwt_secret: %w", err)
		}
		c.Auth.JWTSecret = s
	}
	if c.Storage.EncryptionKey == "" {
		k, err := devSecret(c.Storage.DataDir, encryptionKeyFile, checkKey)
		if err != nil {
			return fmt.Errorf("storage.encryption_key: %w", err)
		}
		c.Storage.EncryptionKey = k
	}
	return nil
}

func (c *Config) checkProductionSecrets() error {
	var p problems
	switch s := c.Auth.JWTSecret; {
	case c.Auth.JWTPublicKeyFile != "":
		// Validate already refuses a secret beside a public key file.
	case s == "":
		p.add("auth.jwt_secret", "must be set in production mode (or set auth.jwt_public_key_file)")
	case isPlaceholder(s):
		p.add("auth.jwt_secret", "is a placeholder; set a random secret of at least %d bytes", minProductionSecret)
	case len(s) < minProductionSecret:
		p.add("auth.jwt_secret", "must be at least %d bytes in production mode, got %d", minProductionSecret, len(s))
	}
	switch k := c.Storage.EncryptionKey; {
	case k == "":
		p.add("storage.encryption_key", `must be set in production mode; generate one with "chatbox keygen"`)
	case isPlaceholder(k):
		p.add("storage.encryption_key", `is a placeholder; generate a key with "chatbox keygen"`)
	}
	for i, k := range c.Storage.PreviousEncryptionKeys {
		if isPlaceholder(k) {
			p.add(fmt.Sprintf("storage.previous_encryption_keys[%d]", i), "is a placeholder")
		}
	}
	return p.err()
}

// isPlaceholder recognises the values people leave in example configs.
func isPlaceholder(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "placeholder") ||
		strings.Contains(l, "changeme") ||
		strings.Contains(l, "change-me") ||
		strings.Contains(l, "change_me")
}

// devSecret returns the secret kept in dir/name, creating it with a fresh
// key if the file does not exist. check vets a secret read back.
func devSecret(dir, name string, check func(string) error) (string, error) {
	file := filepath.Join(dir, name)
	s, err := readSecret(file, check)
	if !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	s, err = GenerateKey()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data_dir: %w", err)
	}
	// O_EXCL: if another process created the file first, use its secret
	// rather than overwrite one that may already be in use.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readSecret(file, check)
	}
	if err != nil {
		return "", fmt.Errorf("create %s: %w", file, err)
	}
	_, err = f.WriteString(s + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	return s, nil
}

// readSecret reads and checks a secret kept in file; the error wraps
// fs.ErrNotExist when there is no such file.
func readSecret(file string, check func(string) error) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	s := strings.TrimSpace(string(b))
	if err := check(s); err != nil {
		return "", fmt.Errorf("%s %w; delete it to generate a new one", file, err)
	}
	return s, nil
}

// decodeKey decodes a base64 encryption key of exactly KeySize bytes.
func decodeKey(k string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		return nil, fmt.Errorf("must be base64 of exactly %d bytes (see \"chatbox keygen\"): not valid base64", KeySize)
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("must be base64 of exactly %d bytes (see \"chatbox keygen\"), got %d bytes", KeySize, len(b))
	}
	return b, nil
}

// EncryptionKeys decodes storage.encryption_key (used to encrypt and
// decrypt) and storage.previous_encryption_keys (decrypt only), in the
// order configured. The current key must be set: call PrepareSecrets first.
func (c *Config) EncryptionKeys() (current []byte, previous [][]byte, err error) {
	if c.Storage.EncryptionKey == "" {
		return nil, nil, errors.New("storage.encryption_key: not set (PrepareSecrets fills it in dev mode)")
	}
	current, err = decodeKey(c.Storage.EncryptionKey)
	if err != nil {
		return nil, nil, fmt.Errorf("storage.encryption_key: %w", err)
	}
	for i, k := range c.Storage.PreviousEncryptionKeys {
		b, err := decodeKey(k)
		if err != nil {
			return nil, nil, fmt.Errorf("storage.previous_encryption_keys[%d]: %w", i, err)
		}
		previous = append(previous, b)
	}
	return current, previous, nil
}

// JWTSecret returns the HS256 secret: the bytes of auth.jwt_secret exactly
// as written, not base64-decoded (a generated dev secret is used as its
// base64 text). It is nil when a public key file is configured instead.
func (c *Config) JWTSecret() []byte {
	if c.Auth.JWTSecret == "" {
		return nil
	}
	return []byte(c.Auth.JWTSecret)
}

// JWTPublicKeyPEM reads auth.jwt_public_key_file; it returns nil, nil when
// none is configured.
func (c *Config) JWTPublicKeyPEM() ([]byte, error) {
	if c.Auth.JWTPublicKeyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.Auth.JWTPublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read auth.jwt_public_key_file: %w", err)
	}
	return b, nil
}
