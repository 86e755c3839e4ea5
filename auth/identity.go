package auth

import (
	"encoding/json"
	"errors"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// RoleAdmin is the role that grants admin rights.
const RoleAdmin = "admin"

// Identity is who a verified token speaks for.
type Identity struct {
	UserID string   // the "sub" claim
	Name   string   // the "name" claim; UserID when the token has none
	Roles  []string // the "roles" claim
}

// IsAdmin reports whether the identity holds the admin role.
func (id Identity) IsAdmin() bool { return slices.Contains(id.Roles, RoleAdmin) }

// claims is the token payload: the registered claims plus CONTRACT §3's own.
type claims struct {
	jwt.RegisteredClaims
	Name  string   `json:"name,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// UnmarshalJSON decodes the payload and refuses an "exp" that is not a JSON
// number: RFC 7519 §2 defines NumericDate as a number, and the jwt package
// would read the string "1893456000" as one.
func (c *claims) UnmarshalJSON(b []byte) error {
	type plain claims // without this method
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	var raw struct {
		Exp json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if e := raw.Exp; len(e) > 0 && e[0] != '-' && (e[0] < '0' || e[0] > '9') && string(e) != "null" {
		return errors.New(`"exp" claim is not a number`)
	}
	return nil
}
