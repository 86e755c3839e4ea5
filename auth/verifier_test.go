package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// rsaKey is generated once: 2048-bit generation is slow under -race.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

var ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

// pkixPEM encodes a public key as a "PUBLIC KEY" PEM block.
func pkixPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func newVerifier(t testing.TB, o Options) *Verifier {
	t.Helper()
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// signed signs claims with method and key, failing the test on error.
func signed(t testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// valid returns claims that pass every check, with overrides applied; a nil
// override deletes the claim.
func valid(overrides jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "u1", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyRejects(t *testing.T) {
	hs := newVerifier(t, Options{Secret: secret})
	rsPEM := pkixPEM(t, &rsaKey().PublicKey)
	rs := newVerifier(t, Options{PublicKeyPEM: rsPEM})
	es := newVerifier(t, Options{PublicKeyPEM: pkixPEM(t, &ecKey().PublicKey)})
	scoped := newVerifier(t, Options{Secret: secret, Issuer: "https://id.example", Audience: "chatbox"})
	past := time.Now().Add(-time.Hour).Unix()
	future := time.Now().Add(time.Hour).Unix()

	good := signed(t, jwt.SigningMethodHS256, secret, valid(nil))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64(`{"sub":"admin","exp":`+big.NewInt(future).String()+`}`) + "." + parts[2]

	tests := []struct {
		name  string
		v     *Verifier
		token string
		want  error // a jwt sentinel also wrapped, or nil to check ErrInvalidToken only
	}{
		{"empty", hs, "", nil},
		{"garbage", hs, "not a token", jwt.ErrTokenMalformed},
		{"three garbage segments", hs, "a.b.c", jwt.ErrTokenMalformed},
		{"too long", hs, strings.Repeat("a", maxToken+1), nil},
		{"no exp", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"exp": nil})), jwt.ErrTokenRequiredClaimMissing},
		{"expired", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"exp": past})), jwt.ErrTokenExpired},
		{"not yet valid", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"nbf": future})), jwt.ErrTokenNotValidYet},
		{"issued in the future", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"iat": future})), jwt.ErrTokenUsedBeforeIssued},
		{"wrong secret", hs, signed(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes long..."), valid(nil)), jwt.ErrTokenSignatureInvalid},
		{"tampered payload", hs, tampered, jwt.ErrTokenSignatureInvalid},
		{"alg none", hs, b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(`{"sub":"u1","exp":`+big.NewInt(future).String()+`}`) + ".", jwt.ErrTokenSignatureInvalid},
		{"alg none on rs256", rs, b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(`{"sub":"u1","exp":`+big.NewInt(future).String()+`}`) + ".", jwt.ErrTokenSignatureInvalid},
		{"alg confusion: hs256 signed with the public key", rs, signed(t, jwt.SigningMethodHS256, rsPEM, valid(nil)), jwt.ErrTokenSignatureInvalid},
		{"rs256 when hs256 configured", hs, signed(t, jwt.SigningMethodRS256, rsaKey(), valid(nil)), jwt.ErrTokenSignatureInvalid},
		{"rs512 when rs256 configured", rs, signed(t, jwt.SigningMethodRS512, rsaKey(), valid(nil)), jwt.ErrTokenSignatureInvalid},
		{"es256 when rs256 configured", rs, signed(t, jwt.SigningMethodES256, ecKey(), valid(nil)), jwt.ErrTokenSignatureInvalid},
		{"hs256 when es256 configured", es, signed(t, jwt.SigningMethodHS256, secret, valid(nil)), jwt.ErrTokenSignatureInvalid},
		{"wrong issuer", scoped, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"iss": "https://evil.example", "aud": "chatbox"})), jwt.ErrTokenInvalidIssuer},
		{"missing issuer", scoped, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"aud": "chatbox"})), nil},
		{"wrong audience", scoped, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"iss": "https://id.example", "aud": "other"})), jwt.ErrTokenInvalidAudience},
		{"missing audience", scoped, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"iss": "https://id.example"})), nil},
		{"missing sub", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": nil})), nil},
		{"empty sub", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": ""})), nil},
		{"long sub", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": strings.Repeat("u", maxSubject+1)})), nil},
		{"control character in sub", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": "u1\nadmin"})), nil},
		// CONTRACT §14; each of these was accepted before (verified on the parent commit).
		{"zero-width space in sub", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": "ali\u200bce"})), nil},
		{"bidi override in sub", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": "\u202eecila"})), nil},
		{"byte order mark in sub", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": "\ufeffalice"})), nil},
		{"name over 256 characters", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"name": strings.Repeat("é", maxName+1)})), nil},
		{"newline in name", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"name": "Ada\nAdmin"})), nil},
		{"BEL in name", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"name": "Ada\a"})), nil},
		{"exp as a numeric string", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"exp": strconv.FormatInt(future, 10)})), jwt.ErrTokenMalformed},
		{"exp as an object", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"exp": map[string]any{"n": future}})), jwt.ErrTokenMalformed},
		{"roles not a list", hs, signed(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"roles": "admin"})), jwt.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.v.Verify(tt.token)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %+v, %v; want ErrInvalidToken", id, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %q", err, tt.want)
			}
			if id.UserID != "" {
				t.Errorf("identity %+v returned with an error", id)
			}
			for _, part := range strings.Split(tt.token, ".") {
				if len(part) > 3 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q contains the token", err)
				}
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	cert := func(t *testing.T) []byte {
		t.Helper()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey().PublicKey, ecKey())
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey)})

	tests := []struct {
		name   string
		opts   Options
		method jwt.SigningMethod
		key    any
		claims jwt.MapClaims
	}{
		{"hs256", Options{Secret: secret}, jwt.SigningMethodHS256, secret, valid(nil)},
		{"rs256", Options{PublicKeyPEM: pkixPEM(t, &rsaKey().PublicKey)}, jwt.SigningMethodRS256, rsaKey(), valid(nil)},
		{"rs256 pkcs1 pem", Options{PublicKeyPEM: pkcs1}, jwt.SigningMethodRS256, rsaKey(), valid(nil)},
		{"es256", Options{PublicKeyPEM: pkixPEM(t, &ecKey().PublicKey)}, jwt.SigningMethodES256, ecKey(), valid(nil)},
		{"es256 certificate", Options{PublicKeyPEM: cert(t)}, jwt.SigningMethodES256, ecKey(), valid(nil)},
		{"issuer and audience", Options{Secret: secret, Issuer: "https://id.example", Audience: "chatbox"}, jwt.SigningMethodHS256, secret,
			valid(jwt.MapClaims{"iss": "https://id.example", "aud": []string{"other", "chatbox"}})},
		{"expired within leeway", Options{Secret: secret}, jwt.SigningMethodHS256, secret,
			valid(jwt.MapClaims{"exp": time.Now().Add(-10 * time.Second).Unix()})},
		{"no iat", Options{Secret: secret}, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"iat": nil})},
		{"longest sub", Options{Secret: secret}, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": strings.Repeat("u", maxSubject-2) + "u1"})},
		{"non-ASCII sub", Options{Secret: secret}, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": "josé-Ω"})},
		{"longest name, in characters", Options{Secret: secret}, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"name": strings.Repeat("é", maxName)})},
		{"exp with a fraction", Options{Secret: secret}, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"exp": float64(time.Now().Add(time.Hour).Unix()) + 0.5})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, tt.opts)
			id, err := v.Verify(signed(t, tt.method, tt.key, tt.claims))
			if err != nil {
				t.Fatal(err)
			}
			if id.UserID != tt.claims["sub"] {
				t.Errorf("user id %q, want %q", id.UserID, tt.claims["sub"])
			}
		})
	}
}

func TestIdentityClaims(t *testing.T) {
	v := newVerifier(t, Options{Secret: secret})
	tests := []struct {
		name  string
		in    Identity
		want  Identity
		admin bool
	}{
		{"name and admin", Identity{UserID: "u1", Name: "Ada", Roles: []string{"support", "admin"}},
			Identity{UserID: "u1", Name: "Ada", Roles: []string{"support", "admin"}}, true},
		{"no name falls back to the id", Identity{UserID: "u2"}, Identity{UserID: "u2", Name: "u2"}, false},
		{"other roles", Identity{UserID: "u3", Name: "Bob", Roles: []string{"user", "Admin"}},
			Identity{UserID: "u3", Name: "Bob", Roles: []string{"user", "Admin"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Sign(secret, tt.in, time.Minute, "", "")
			if err != nil {
				t.Fatal(err)
			}
			id, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if id.UserID != tt.want.UserID || id.Name != tt.want.Name || !slices.Equal(id.Roles, tt.want.Roles) {
				t.Errorf("got %+v, want %+v", id, tt.want)
			}
			if id.IsAdmin() != tt.admin {
				t.Errorf("IsAdmin() = %v, want %v", id.IsAdmin(), tt.admin)
			}
		})
	}
}

func TestSign(t *testing.T) {
	tok, err := Sign(secret, Identity{UserID: "u1", Name: "Ada"}, time.Hour, "https://id.example", "chatbox")
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Options{Secret: secret, Issuer: "https://id.example", Audience: "chatbox"})
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("Verify(Sign(...)): %v", err)
	}
	var c jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sub", "name", "exp", "iat", "iss", "aud"} {
		if _, ok := c[k]; !ok {
			t.Errorf("claim %q missing from %v", k, c)
		}
	}
	if _, ok := c["roles"]; ok {
		t.Errorf("empty roles written: %v", c)
	}

	bad := []struct {
		name   string
		secret []byte
		id     Identity
		ttl    time.Duration
	}{
		{"empty secret", nil, Identity{UserID: "u"}, time.Hour},
		{"empty user", secret, Identity{}, time.Hour},
		{"zero ttl", secret, Identity{UserID: "u"}, 0},
		{"control character", secret, Identity{UserID: "u\x00"}, time.Hour},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Sign(tt.secret, tt.id, tt.ttl, "", ""); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestNewVerifierRejects(t *testing.T) {
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"neither", Options{}, "exactly one"},
		{"both", Options{Secret: secret, PublicKeyPEM: pkixPEM(t, &ecKey().PublicKey)}, "exactly one"},
		{"negative leeway", Options{Secret: secret, Leeway: -time.Second}, "leeway"},
		{"not pem", Options{PublicKeyPEM: []byte("hello")}, "no PEM block"},
		{"private key block", Options{PublicKeyPEM: privPEM}, `"EC PRIVATE KEY"`},
		{"corrupt der", Options{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}})}, "public key"},
		{"small rsa", Options{PublicKeyPEM: pkixPEM(t, &smallRSA.PublicKey)}, "1024 bits"},
		{"p-384", Options{PublicKeyPEM: pkixPEM(t, &p384.PublicKey)}, "P-384"},
		{"ed25519", Options{PublicKeyPEM: pkixPEM(t, edPub)}, "want an RSA or ECDSA P-256 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// The secret is copied: changing the caller's slice later changes nothing.
func TestNewVerifierCopiesSecret(t *testing.T) {
	s := slices.Clone(secret)
	v := newVerifier(t, Options{Secret: s})
	tok, err := Sign(secret, Identity{UserID: "u1"}, time.Minute, "", "")
	if err != nil {
		t.Fatal(err)
	}
	s[0] ^= 0xff
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := newVerifier(t, Options{Secret: secret})
	good, err := Sign(secret, Identity{UserID: "u1", Roles: []string{"admin"}}, time.Minute, "", "")
	if err != nil {
		t.Fatal(err)
	}
	bad := good[:len(good)-2] + "xx"
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if id, err := v.Verify(good); err != nil || !id.IsAdmin() {
					t.Errorf("good token: %+v, %v", id, err)
					return
				}
				if _, err := v.Verify(bad); err == nil {
					t.Error("bad token accepted")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkVerifyHS256(b *testing.B) {
	v := newVerifier(b, Options{Secret: secret})
	tok, err := Sign(secret, Identity{UserID: "user-1234", Name: "Ada", Roles: []string{"admin"}}, time.Hour, "", "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
