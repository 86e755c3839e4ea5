package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sign returns an HS256 token for id, valid for ttl from now, with the
// claims sub, name, roles, iat and exp, plus iss and aud when non-empty. It
// serves the "chatbox token" command and tests; production tokens normally
// come from the deployment's identity provider.
func Sign(secret []byte, id Identity, ttl time.Duration, issuer, audience string) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("sign token: empty secret")
	case id.UserID == "":
		return "", errors.New("sign token: empty user id")
	case ttl <= 0:
		return "", fmt.Errorf("sign token: ttl must be positive, got %s", ttl)
	}
	if err := checkSubject(id.UserID); err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	now := time.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   id.UserID,
			Issuer:    issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Name:  id.Name,
		Roles: id.Roles,
	}
	if audience != "" {
		c.Audience = jwt.ClaimStrings{audience}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
