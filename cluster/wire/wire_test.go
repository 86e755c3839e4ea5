package wire

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The protoc line of the header names the local protoc's version, which
// may differ from the one that generated the committed file.
var protocLine = regexp.MustCompile(`(?m)^// \tprotoc +v.*\n`)

func TestGeneratedCodeIsFresh(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc not installed (Debian: apt-get install protobuf-compiler); cannot check wire.pb.go against wire.proto")
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "protoc-gen-go")
	build := exec.Command("go", "build", "-o", plugin, "google.golang.org/protobuf/cmd/protoc-gen-go")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build protoc-gen-go at the version go.mod pins: %v\n%s", err, out)
	}
	gen := exec.Command(protoc, "--plugin=protoc-gen-go="+plugin, "--go_out="+dir, "--go_opt=paths=source_relative", "wire.proto")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	fresh, err := os.ReadFile(filepath.Join(dir, "wire.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("wire.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(protocLine.ReplaceAll(fresh, nil), protocLine.ReplaceAll(committed, nil)) {
		t.Fatal("wire.pb.go is stale: run `go generate ./cluster/wire` and commit the result")
	}
}

// A newer node may send an Envelope case this one does not know: it must
// decode as an Envelope without a body (which the receiver drops), never fail.
func TestAnEnvelopeOfAnUnknownCaseDecodesWithoutABody(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 2)
	b = protowire.AppendTag(b, 99, protowire.BytesType) // a case added after this build
	b = protowire.AppendBytes(b, []byte{0x0a, 0x01, 'x'})
	var env Envelope
	if err := proto.Unmarshal(b, &env); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if env.GetVersion() != 2 || env.GetBody() != nil {
		t.Fatalf("version %d, body %v; want 2 and none", env.GetVersion(), env.GetBody())
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := &Envelope{Version: Version, Body: &Envelope_Event{Event: &Event{Kind: 1, Frame: []byte(`{"type":"delta"}`),
		SessionId: "s", MessageId: "m", Seq: 3, Offset: 10, Text: "héllo"}}}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Envelope
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &out) {
		t.Fatalf("round trip: %v != %v", &out, in)
	}
}
