package sqlite

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

func openInternal(t *testing.T, mod ...func(*Options)) *Store {
	t.Helper()
	k, err := persistence.NewKeyring([]byte("chatbox sqlite test key 32 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: t.TempDir(), Keyring: k}
	for _, f := range mod {
		f(&o)
	}
	st, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}
