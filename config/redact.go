package config

import (
	"fmt"
	"net/url"
)

// String prints a without its secret, so a Config printed with %v or %+v
// leaks nothing.
func (a Auth) String() string {
	return fmt.Sprintf("{JWTSecret:%s JWTPublicKeyFile:%s Issuer:%s Audience:%s}",
		redact(a.JWTSecret), a.JWTPublicKeyFile, a.Issuer, a.Audience)
}

// String prints s without its keys or the password in its MongoDB URI.
func (s Storage) String() string {
	return fmt.Sprintf("{MongoURI:%s Database:%s DataDir:%s EncryptionKey:%s PreviousEncryptionKeys:%d Timeout:%s Sync:%s}",
		redactURI(s.MongoURI), s.Database, s.DataDir, redact(s.EncryptionKey), len(s.PreviousEncryptionKeys), s.Timeout, s.Sync)
}

func redact(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}

func redactURI(uri string) string {
	if uri == "" {
		return `""`
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "[unparsable]"
	}
	return u.Redacted()
}
