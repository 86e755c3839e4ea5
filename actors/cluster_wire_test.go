package actors

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/chatbox/chatbox/cluster/wire"
	"github.com/chatbox/chatbox/protocol"
)

// A command that crosses nodes arrives whole: every field of
// protocol.Command survives the wire form and its protobuf encoding. A
// field added to Command and not to wire.proto fails here.
func TestACommandCrossesNodesWithEveryField(t *testing.T) {
	c := protocol.Command{}
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v-" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(3 + i))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"a1", "a2"}))
		default:
			t.Fatalf("Command.%s is a %s: teach this test (and wire.proto) about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	b, err := proto.Marshal(commandToWire(c))
	if err != nil {
		t.Fatal(err)
	}
	var w wire.ClientCommand
	if err := proto.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if got := commandFromWire(&w); !reflect.DeepEqual(got, c) {
		t.Fatalf("across the wire:\n got %+v\nwant %+v", got, c)
	}
}
