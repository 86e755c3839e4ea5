package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestPrintingRedactsSecrets(t *testing.T) {
	c := Default()
	c.Auth.JWTSecret = "jwt-secret-value"
	c.Storage.MongoURI = "mongodb://chat:mongo-password@db:27017"
	c.Storage.EncryptionKey = testKey
	c.Storage.PreviousEncryptionKeys = []string{longKey}
	for _, format := range []string{"%v", "%+v", "%s"} {
		out := fmt.Sprintf(format, c)
		for _, secret := range []string{"jwt-secret-value", "mongo-password", testKey, longKey} {
			if strings.Contains(out, secret) {
				t.Errorf("%s prints a secret: %s", format, out)
			}
		}
		if !strings.Contains(out, "db:27017") {
			t.Errorf("%s hides the mongo host: %s", format, out)
		}
	}
}
