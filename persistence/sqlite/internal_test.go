package sqlite

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	k, err := persistence.NewKeyring([]byte("chatbox sqlite test key 32 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(context.Background(), Options{Dir: t.TempDir(), Keyring: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}
