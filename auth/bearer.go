package auth

import (
	"net/http"
	"strings"
)

// subprotocolPrefix marks the token among a browser's WebSocket
// subprotocols: browsers cannot set Authorization on an upgrade request, so
// they send "Sec-WebSocket-Protocol: chatbox.v1, bearer.<jwt>" (CONTRACT §4).
const subprotocolPrefix = "bearer."

// BearerToken finds the client's token in r: first "Authorization: Bearer
// <token>" (scheme case-insensitive), then a "bearer.<token>" entry of
// Sec-WebSocket-Protocol, which may be repeated or comma-separated.
// fromSubprotocol reports the latter, so the upgrade can select a
// subprotocol other than the token. It returns "", false when there is none.
// Tokens are never read from the URL, where they would end up in logs.
func BearerToken(r *http.Request) (token string, fromSubprotocol bool) {
	// The canonical keys index the map directly: Header.Get and Values
	// would canonicalise "Sec-WebSocket-Protocol" into a new string each call.
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			if t := strings.TrimSpace(rest); t != "" {
				return t, false
			}
		}
	}
	for _, h := range r.Header["Sec-Websocket-Protocol"] {
		for p := range strings.SplitSeq(h, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), subprotocolPrefix); ok && t != "" {
				return t, true
			}
		}
	}
	return "", false
}
