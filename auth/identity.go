package auth

import (
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
