package auth

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify signs arbitrary payloads with the configured secret, so the
// signature holds and the claim rules are what is tested, and verifies
// them with the options a deployment sets (issuer and audience). Whatever
// is accepted satisfies CONTRACT §3 and §14; nothing panics.
func FuzzVerify(f *testing.F) {
	for _, p := range []string{
		`{"sub":"u1","exp":4102444800,"iss":"https://id.example","aud":"chatbox"}`,
		`{"sub":"u1","exp":"4102444800","iss":"https://id.example","aud":["chatbox"]}`,
		`{"sub":"ali\u200bce","name":"A\nB","exp":4102444800.5,"iss":"https://id.example","aud":"chatbox","roles":["admin"]}`,
		`{"sub":"","exp":1,"nbf":1e30}`, `[]`, `null`, `{"exp":{"a":1}}`,
	} {
		f.Add([]byte(p))
	}
	v, err := NewVerifier(Options{Secret: secret, Issuer: "https://id.example", Audience: "chatbox"})
	if err != nil {
		f.Fatal(err)
	}
	header := b64(`{"alg":"HS256","typ":"JWT"}`)
	f.Fuzz(func(t *testing.T, payload []byte) {
		signing := header + "." + b64(string(payload))
		sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
		if err != nil {
			t.Fatal(err)
		}
		token := signing + "." + b64(string(sig))
		id, err := v.Verify(token)
		if err != nil {
			if id.UserID != "" {
				t.Fatalf("identity %+v with error %v", id, err)
			}
			return
		}
		var raw struct {
			Exp json.RawMessage `json:"exp"`
		}
		json.Unmarshal(payload, &raw)
		if len(raw.Exp) == 0 || raw.Exp[0] == '"' {
			t.Fatalf("accepted exp %s", raw.Exp)
		}
		if id.UserID == "" || len(id.UserID) > maxSubject || utf8.RuneCountInString(id.Name) > maxName {
			t.Fatalf("accepted %+v", id)
		}
		for _, r := range id.UserID {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted sub %q", id.UserID)
			}
		}
		if strings.ContainsFunc(id.Name, unicode.IsControl) {
			t.Fatalf("accepted name %q", id.Name)
		}
	})
}
