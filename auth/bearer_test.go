package auth

import (
	"net/http/httptest"
	"testing"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string][]string
		want    string
		fromSub bool
	}{
		{"none", nil, "", false},
		{"authorization", map[string][]string{"Authorization": {"Bearer abc.def.ghi"}}, "abc.def.ghi", false},
		{"scheme case-insensitive", map[string][]string{"Authorization": {"bearer   abc "}}, "abc", false},
		{"basic is not bearer", map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}, "", false},
		{"bearer without token", map[string][]string{"Authorization": {"Bearer "}}, "", false},
		{"subprotocol list", map[string][]string{"Sec-Websocket-Protocol": {"chatbox.v1, bearer.abc.def.ghi"}}, "abc.def.ghi", true},
		{"subprotocol no spaces", map[string][]string{"Sec-Websocket-Protocol": {"chatbox.v1,bearer.xyz"}}, "xyz", true},
		{"subprotocol repeated header", map[string][]string{"Sec-Websocket-Protocol": {"chatbox.v1", " bearer.xyz "}}, "xyz", true},
		{"subprotocol first", map[string][]string{"Sec-Websocket-Protocol": {"bearer.xyz, chatbox.v1"}}, "xyz", true},
		{"subprotocol empty token", map[string][]string{"Sec-Websocket-Protocol": {"chatbox.v1, bearer."}}, "", false},
		{"subprotocol without token", map[string][]string{"Sec-Websocket-Protocol": {"chatbox.v1"}}, "", false},
		{"subprotocol is case-sensitive", map[string][]string{"Sec-Websocket-Protocol": {"Bearer.xyz"}}, "", false},
		{"authorization wins", map[string][]string{"Authorization": {"Bearer a"}, "Sec-Websocket-Protocol": {"bearer.b"}}, "a", false},
		{"basic falls back to subprotocol", map[string][]string{"Authorization": {"Basic x"}, "Sec-Websocket-Protocol": {"bearer.b"}}, "b", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws", nil)
			for k, vs := range tt.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			got, fromSub := BearerToken(r)
			if got != tt.want || fromSub != tt.fromSub {
				t.Errorf("got %q, %v; want %q, %v", got, fromSub, tt.want, tt.fromSub)
			}
		})
	}
}
