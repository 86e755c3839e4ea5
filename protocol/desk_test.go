package protocol

import (
	"strings"
	"testing"
)

func TestDecodeChecksNotesAndRatings(t *testing.T) {
	for _, tc := range []struct {
		frame string
		ok    bool
	}{
		{`{"type":"note","session_id":"s","text":"VIP"}`, true},
		{`{"type":"note","session_id":"s","text":"  "}`, false},
		{`{"type":"note","text":"VIP"}`, false},
		{`{"type":"rate","session_id":"s","score":1}`, true},
		{`{"type":"rate","session_id":"s","score":5,"comment":"great"}`, true},
		{`{"type":"rate","session_id":"s","score":0}`, false},
		{`{"type":"rate","session_id":"s","score":6}`, false},
		{`{"type":"rate","session_id":"s","score":-1}`, false},
		{`{"type":"rate","score":3}`, false},
		{`{"type":"rate","session_id":"s","score":3,"comment":"` + strings.Repeat("x", MaxCommentLen+1) + `"}`, false},
	} {
		_, err := Decode([]byte(tc.frame))
		if (err == nil) != tc.ok {
			t.Errorf("Decode(%.60s): err = %v, want ok %v", tc.frame, err, tc.ok)
		}
	}
}
