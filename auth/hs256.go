package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// The HS256 fast path. Every connection presents a token, so verifying one
// is on the connect path: golang-jwt decodes the header into a map and the
// claims through encoding/json's reflection (about 60 allocations and a deep
// stack for a 150-byte payload). fastHS256 verifies the common shape of
// token itself, with crypto/hmac over the raw segments and a small decoder
// for the claims object, and reaches the same decision and error class as
// the golang-jwt path for it. Whatever it does not decode itself (another
// header, escapes in strings, numbers with fractions or exponents, null,
// duplicate or case-folded keys, anything it cannot prove to be valid JSON)
// it hands back undecided, and Verify lets golang-jwt decide. So it adds no
// accepted token: TestFastPathAgrees and FuzzFastPathAgrees check that both
// paths accept and reject the same tokens with the same error class.

// hs256Headers are the header segments the fast path knows: the
// base64url of {"alg":"HS256","typ":"JWT"} (golang-jwt, PyJWT, jsonwebtoken),
// the same with the keys swapped, and {"alg":"HS256"}. Any other header,
// including every other alg, goes to golang-jwt.
var hs256Headers = [...]string{
	base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)),
	base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`)),
	base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)),
}

// hs256SigLen is the length of a base64url (unpadded) HMAC-SHA256.
const hs256SigLen = 43

// hmacState is one keyed HMAC-SHA256 and a scratch buffer, pooled.
type hmacState struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// hs256 holds what the fast path needs of a Verifier configured with a
// secret.
type hs256 struct {
	pool     sync.Pool // *hmacState keyed with the secret
	leeway   time.Duration
	issuer   string // "" when not configured
	audience string // "" when not configured
}

func newHS256(secret []byte, o Options) *hs256 {
	h := &hs256{leeway: o.Leeway, issuer: o.Issuer, audience: o.Audience}
	h.pool.New = func() any { return &hmacState{mac: hmac.New(sha256.New, secret)} }
	return h
}

// fastClaims is what the fast path decodes of a payload. The byte slices
// point into the pooled buffer until Verify copies what it keeps.
type fastClaims struct {
	sub, name, iss []byte
	roles          []string
	rolesSet       bool // "roles" present (an empty list is kept as empty, not nil)
	exp, nbf, iat  int64
	hasExp         bool
	hasNbf, hasIat bool
	audN           int  // entries of "aud"
	audFirstEmpty  bool // its first entry is ""
	audMatch       bool // one entry equals the configured audience
}

// verify decides token, or returns decided=false for golang-jwt to decide.
// When it decides, rejection is nil (accepted, with the identity's claims
// not yet vetted by checkSubject and checkName) or one of the jwt sentinels
// in rejections, the one the golang-jwt path would report.
func (h *hs256) verify(token string, now time.Time) (id Identity, rejection error, decided bool) {
	// Split exactly as golang-jwt does: three segments, no third dot.
	headerSeg, rest, ok := strings.Cut(token, ".")
	if !ok {
		return Identity{}, jwt.ErrTokenMalformed, true
	}
	claimsSeg, sigSeg, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sigSeg, '.') >= 0 {
		return Identity{}, jwt.ErrTokenMalformed, true
	}
	if headerSeg != hs256Headers[0] && headerSeg != hs256Headers[1] && headerSeg != hs256Headers[2] {
		return Identity{}, nil, false
	}
	if len(sigSeg) > hs256SigLen {
		return Identity{}, nil, false
	}

	st := h.pool.Get().(*hmacState)
	defer h.pool.Put(st)
	// buf holds the token as bytes (the segments are decoded from it, and
	// the HMAC is over its first two), then the decoded claims.
	signing := len(headerSeg) + 1 + len(claimsSeg)
	need := len(token) + base64.RawURLEncoding.DecodedLen(len(claimsSeg))
	if cap(st.buf) < need {
		st.buf = make([]byte, need, max(need, 512))
	}
	buf := st.buf[:need]
	copy(buf, token)
	claims := buf[len(token):]
	n, err := base64.RawURLEncoding.Decode(claims, buf[len(headerSeg)+1:signing])
	if err != nil {
		// golang-jwt decodes with the same encoding: "could not base64
		// decode claim".
		return Identity{}, jwt.ErrTokenMalformed, true
	}
	var c fastClaims
	if !h.decode(claims[:n], &c) {
		return Identity{}, nil, false
	}
	var sig [hs256SigLen]byte // DecodedLen(43) is 32: room to spare
	sn, err := base64.RawURLEncoding.Decode(sig[:], buf[signing+1:len(token)])
	if err != nil {
		return Identity{}, jwt.ErrTokenMalformed, true
	}
	st.mac.Reset()
	st.mac.Write(buf[:signing])
	if !hmac.Equal(sig[:sn], st.mac.Sum(st.sum[:0])) {
		return Identity{}, jwt.ErrTokenSignatureInvalid, true
	}
	if r := h.validate(&c, now); r != nil {
		return Identity{}, r, true
	}
	id = Identity{UserID: string(c.sub), Name: string(c.name), Roles: c.roles}
	if c.rolesSet && id.Roles == nil {
		id.Roles = []string{}
	}
	return id, nil, true
}

// validate is golang-jwt's Validator with Verify's options (exp required,
// iat checked, the leeway, issuer and audience when configured), reporting
// the first of its errors in the order of rejections.
func (h *hs256) validate(c *fastClaims, now time.Time) error {
	var missing, expired, early, future, badIss, badAud bool
	if !c.hasExp {
		missing = true
	} else if !now.Before(time.Unix(c.exp, 0).Add(h.leeway)) {
		expired = true
	}
	if c.hasNbf && now.Before(time.Unix(c.nbf, 0).Add(-h.leeway)) {
		early = true
	}
	if c.hasIat && now.Before(time.Unix(c.iat, 0).Add(-h.leeway)) {
		future = true
	}
	if h.audience != "" {
		if c.audN == 0 || c.audN == 1 && c.audFirstEmpty {
			missing = true
		} else if !c.audMatch {
			badAud = true
		}
	}
	if h.issuer != "" {
		if len(c.iss) == 0 {
			missing = true
		} else if string(c.iss) != h.issuer {
			badIss = true
		}
	}
	switch {
	case missing:
		return jwt.ErrTokenRequiredClaimMissing
	case expired:
		return jwt.ErrTokenExpired
	case early:
		return jwt.ErrTokenNotValidYet
	case future:
		return jwt.ErrTokenUsedBeforeIssued
	case badIss:
		return jwt.ErrTokenInvalidIssuer
	case badAud:
		return jwt.ErrTokenInvalidAudience
	}
	return nil
}

// maxFastDepth bounds the nesting of an unknown claim's value the fast path
// skips; deeper values go to golang-jwt.
const maxFastDepth = 16

// decode reads the claims object b into c. It returns false, undecided,
// for anything but a JSON object whose known claims have the plain form:
// strings without escapes in valid UTF-8, non-negative integers of at most
// 12 digits, "aud" a string or a list of them, "roles" a list of strings.
// Other keys are skipped after their value is checked to be valid JSON; a
// key that encoding/json could match to a claim by case folding, or that has
// an escape or a non-ASCII byte, is undecided, as is a repeated claim.
func (h *hs256) decode(b []byte, c *fastClaims) bool {
	d := jsonScan{b: b}
	d.ws()
	if !d.eat('{') {
		return false
	}
	var seen uint16
	d.ws()
	if d.eat('}') {
		return d.end()
	}
	for {
		d.ws()
		key, ok := d.plainString()
		if !ok || !asciiKey(key) {
			return false
		}
		d.ws()
		if !d.eat(':') {
			return false
		}
		d.ws()
		bit := uint16(0)
		switch string(key) {
		case "iss":
			bit = 1 << 0
			if c.iss, ok = d.plainString(); !ok {
				return false
			}
		case "sub":
			bit = 1 << 1
			if c.sub, ok = d.plainString(); !ok {
				return false
			}
		case "name":
			bit = 1 << 2
			if c.name, ok = d.plainString(); !ok {
				return false
			}
		case "jti":
			bit = 1 << 3
			if _, ok = d.plainString(); !ok {
				return false
			}
		case "exp":
			bit = 1 << 4
			if c.exp, ok = d.smallInt(); !ok {
				return false
			}
			c.hasExp = true
		case "nbf":
			bit = 1 << 5
			if c.nbf, ok = d.smallInt(); !ok {
				return false
			}
			c.hasNbf = true
		case "iat":
			bit = 1 << 6
			if c.iat, ok = d.smallInt(); !ok {
				return false
			}
			c.hasIat = true
		case "aud":
			bit = 1 << 7
			if !h.decodeAudience(&d, c) {
				return false
			}
		case "roles":
			bit = 1 << 8
			if !decodeRoles(&d, c) {
				return false
			}
		default:
			if foldsToClaim(key) || !d.skipValue(0) {
				return false
			}
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		d.ws()
		if d.eat('}') {
			return d.end()
		}
		if !d.eat(',') {
			return false
		}
	}
}

func (h *hs256) decodeAudience(d *jsonScan, c *fastClaims) bool {
	one := func(s []byte) {
		if c.audN == 0 && len(s) == 0 {
			c.audFirstEmpty = true
		}
		c.audN++
		if h.audience != "" && string(s) == h.audience {
			c.audMatch = true
		}
	}
	if d.peek() == '"' {
		s, ok := d.plainString()
		if ok {
			one(s)
		}
		return ok
	}
	if !d.eat('[') {
		return false
	}
	d.ws()
	if d.eat(']') {
		return true
	}
	for {
		d.ws()
		s, ok := d.plainString()
		if !ok {
			return false
		}
		one(s)
		d.ws()
		if d.eat(']') {
			return true
		}
		if !d.eat(',') {
			return false
		}
	}
}

func decodeRoles(d *jsonScan, c *fastClaims) bool {
	if !d.eat('[') {
		return false
	}
	c.rolesSet = true
	d.ws()
	if d.eat(']') {
		return true
	}
	for {
		d.ws()
		s, ok := d.plainString()
		if !ok {
			return false
		}
		c.roles = append(c.roles, string(s))
		d.ws()
		if d.eat(']') {
			return true
		}
		if !d.eat(',') {
			return false
		}
	}
}

// claimKeys are the JSON names of the claims golang-jwt's path decodes
// (RegisteredClaims and claims' own).
var claimKeys = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "name", "roles"}

// foldsToClaim reports whether an unknown ASCII key would still be matched
// to a claim by encoding/json, which matches names case-insensitively.
func foldsToClaim(key []byte) bool {
	for _, k := range claimKeys {
		if strings.EqualFold(string(key), k) {
			return true
		}
	}
	return false
}

// asciiKey: printable ASCII only, so that no Unicode case folding (the
// Kelvin sign folds to k) can make encoding/json match it to a claim.
func asciiKey(key []byte) bool {
	for _, b := range key {
		if b < 0x20 || b >= 0x7f {
			return false
		}
	}
	return true
}

// jsonScan is a cursor over a JSON text for the fast path: each method
// either consumes a whole well-formed token or reports false, and false
// always means "undecided", never "invalid".
type jsonScan struct {
	b []byte
	i int
}

func (d *jsonScan) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *jsonScan) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// ws skips JSON whitespace.
func (d *jsonScan) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (d *jsonScan) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// plainString consumes a string with no escape and no control character,
// in valid UTF-8: encoding/json decodes such a string to its bytes as they
// are.
func (d *jsonScan) plainString() ([]byte, bool) {
	if !d.eat('"') {
		return nil, false
	}
	start := d.i
	ascii := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		d.i++
	}
	return nil, false
}

// smallInt consumes a non-negative integer of at most 12 digits in JSON's
// form (no leading zero), which golang-jwt's NumericDate reads exactly as
// that many seconds.
func (d *jsonScan) smallInt() (int64, bool) {
	start := d.i
	var n int64
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		n = n*10 + int64(d.b[d.i]-'0')
		d.i++
	}
	digits := d.i - start
	if digits == 0 || digits > 12 || digits > 1 && d.b[start] == '0' {
		return 0, false
	}
	// A fraction or an exponent: golang-jwt decides.
	if c := d.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, false
	}
	return n, true
}

// skipValue consumes any well-formed JSON value up to maxFastDepth deep.
// Strings may hold escapes here (they are only checked, not decoded) and any
// byte from 0x20 up, as encoding/json accepts.
func (d *jsonScan) skipValue(depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	switch d.peek() {
	case '"':
		return d.skipString()
	case '{':
		d.i++
		d.ws()
		if d.eat('}') {
			return true
		}
		for {
			d.ws()
			if d.peek() != '"' || !d.skipString() {
				return false
			}
			d.ws()
			if !d.eat(':') {
				return false
			}
			d.ws()
			if !d.skipValue(depth + 1) {
				return false
			}
			d.ws()
			if d.eat('}') {
				return true
			}
			if !d.eat(',') {
				return false
			}
		}
	case '[':
		d.i++
		d.ws()
		if d.eat(']') {
			return true
		}
		for {
			d.ws()
			if !d.skipValue(depth + 1) {
				return false
			}
			d.ws()
			if d.eat(']') {
				return true
			}
			if !d.eat(',') {
				return false
			}
		}
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		return d.skipNumber()
	}
}

func (d *jsonScan) literal(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

func (d *jsonScan) skipString() bool {
	d.i++ // the opening quote
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			d.i++
			if d.i >= len(d.b) {
				return false
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(d.b)-d.i < 5 {
					return false
				}
				for _, h := range d.b[d.i+1 : d.i+5] {
					if !isHex(h) {
						return false
					}
				}
				d.i += 4
			default:
				return false
			}
		}
		d.i++
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipNumber consumes a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *jsonScan) skipNumber() bool {
	d.eat('-')
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return false
	}
	if d.eat('.') && d.digits() == 0 {
		return false
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if d.digits() == 0 {
			return false
		}
	}
	return true
}

func (d *jsonScan) digits() int {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}
