package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// DefaultLeeway absorbs clock skew between the token issuer and us.
	DefaultLeeway = 30 * time.Second
	// maxSubject bounds the user id, which names actors and keys in storage.
	maxSubject = 128
	// maxName bounds the display name, in characters: users and admins see it.
	maxName = 256
	// maxToken bounds the work an unauthenticated client can make us do.
	maxToken = 8 << 10
	// minRSABits refuses RSA keys too short to be safe.
	minRSABits = 2048
)

// Options configure a Verifier. Exactly one of Secret and PublicKeyPEM is set.
type Options struct {
	// Secret is the HS256 key, used as given.
	Secret []byte
	// PublicKeyPEM holds one PEM block: a "PUBLIC KEY" (PKIX), an
	// "RSA PUBLIC KEY" (PKCS #1) or a "CERTIFICATE". An RSA key (at least
	// 2048 bits) means RS256, an ECDSA P-256 key means ES256.
	PublicKeyPEM []byte
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be among the token's "aud".
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// DefaultLeeway.
	Leeway time.Duration
}

// Verifier checks tokens against one key and one algorithm.
type Verifier struct {
	key    any // []byte, *rsa.PublicKey or *ecdsa.PublicKey
	parser *jwt.Parser
	hs     *hs256 // the HS256 fast path, with a secret; nil with a public key
	now    func() time.Time
}

// NewVerifier builds a Verifier from o. It does no I/O: the caller reads the
// PEM file.
func NewVerifier(o Options) (*Verifier, error) {
	if (len(o.Secret) == 0) == (len(o.PublicKeyPEM) == 0) {
		return nil, errors.New("new verifier: exactly one of a secret and a public key must be set")
	}
	if o.Leeway < 0 {
		return nil, fmt.Errorf("new verifier: negative leeway %s", o.Leeway)
	}
	if o.Leeway == 0 {
		o.Leeway = DefaultLeeway
	}
	var (
		key any
		alg string
	)
	if len(o.Secret) > 0 {
		key, alg = slices.Clone(o.Secret), jwt.SigningMethodHS256.Alg()
	} else {
		var err error
		if key, alg, err = parsePublicKey(o.PublicKeyPEM); err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(o.Leeway),
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	v := &Verifier{key: key, now: time.Now}
	if secret, ok := key.([]byte); ok {
		v.hs = newHS256(secret, o)
	}
	v.parser = jwt.NewParser(append(opts, jwt.WithTimeFunc(func() time.Time { return v.now() }))...)
	return v, nil
}

// parsePublicKey decodes one PEM public key and returns it with the only
// algorithm it may verify.
func parsePublicKey(b []byte) (any, string, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, "", errors.New("public key: no PEM block found")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, "", fmt.Errorf("public key: PEM block %q, want \"PUBLIC KEY\", \"RSA PUBLIC KEY\" or \"CERTIFICATE\"", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, "", fmt.Errorf("public key: RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return k, jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("public key: ECDSA curve %s, want P-256 (ES256)", k.Curve.Params().Name)
		}
		return k, jwt.SigningMethodES256.Alg(), nil
	default:
		return nil, "", fmt.Errorf("public key: %T, want an RSA or ECDSA P-256 key", pub)
	}
}

// rejections are the jwt errors Verify reports, most fundamental first; any
// other error is reported as "rejected". Their texts are fixed strings, so
// nothing from the token reaches an error message.
var rejections = []error{
	jwt.ErrTokenMalformed,
	jwt.ErrTokenSignatureInvalid,
	jwt.ErrTokenUnverifiable,
	jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrTokenExpired,
	jwt.ErrTokenNotValidYet,
	jwt.ErrTokenUsedBeforeIssued,
	jwt.ErrTokenInvalidIssuer,
	jwt.ErrTokenInvalidAudience,
}

// Verify checks token's signature, algorithm, expiry, issuer and audience
// and returns the identity it carries. Every error wraps ErrInvalidToken
// (and, where one applies, the jwt package's sentinel such as
// jwt.ErrTokenExpired); none contains the token.
func (v *Verifier) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(token) > maxToken {
		return Identity{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxToken)
	}
	var (
		id      Identity
		decided bool
	)
	if v.hs != nil {
		var rejection error
		if id, rejection, decided = v.hs.verify(token, v.now()); rejection != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, rejection)
		}
	}
	if !decided {
		var err error
		if id, err = v.verifyJWT(token); err != nil {
			return Identity{}, err
		}
	}
	if err := checkSubject(id.UserID); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := checkName(id.Name); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if id.Name == "" {
		id.Name = id.UserID
	}
	return id, nil
}

// verifyJWT is Verify's checks of signature, algorithm and registered claims
// done by golang-jwt: for the public-key algorithms and for whatever HS256
// token the fast path leaves undecided.
func (v *Verifier) verifyJWT(token string) (Identity, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFunc); err != nil {
		for _, r := range rejections {
			if errors.Is(err, r) {
				return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, r)
			}
		}
		return Identity{}, fmt.Errorf("%w: rejected", ErrInvalidToken)
	}
	return Identity{UserID: c.Subject, Name: c.Name, Roles: c.Roles}, nil
}

// keyFunc returns the one configured key; the parser has already refused
// any algorithm but the pinned one.
func (v *Verifier) keyFunc(*jwt.Token) (any, error) { return v.key, nil }

// checkSubject vets the user id: it names actors, storage records and log
// lines, and admins tell users apart by it, so it must be present, bounded,
// and free of control and format characters (zero-width, bidi overrides:
// they would let one id look like another).
func checkSubject(sub string) error {
	switch {
	case sub == "":
		return errors.New(`missing "sub" claim`)
	case len(sub) > maxSubject:
		return fmt.Errorf(`"sub" claim longer than %d bytes`, maxSubject)
	case !utf8.ValidString(sub):
		return errors.New(`"sub" claim is not valid UTF-8`)
	}
	for _, r := range sub {
		if unicode.IsControl(r) {
			return errors.New(`"sub" claim contains a control character`)
		}
		if unicode.Is(unicode.Cf, r) {
			return errors.New(`"sub" claim contains a format character`)
		}
	}
	return nil
}

// checkName vets the display name shown to users and admins (CONTRACT
// §14): at most maxName characters, no control characters (newlines, BEL).
func checkName(name string) error {
	if utf8.RuneCountInString(name) > maxName {
		return fmt.Errorf(`"name" claim longer than %d characters`, maxName)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return errors.New(`"name" claim contains a control character`)
		}
	}
	return nil
}
