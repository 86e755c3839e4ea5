// Package wire holds the protobuf messages Chatbox nodes send each other,
// generated from wire.proto (see there for the versioning rules). The
// generated wire.pb.go is committed; TestGeneratedCodeIsFresh fails when it
// is stale. Regenerate with `go generate ./cluster/wire` (needs protoc,
// Debian's protobuf-compiler; protoc-gen-go is the version go.mod pins).
package wire

//go:generate go build -o protoc-gen-go.bin google.golang.org/protobuf/cmd/protoc-gen-go
//go:generate protoc --plugin=protoc-gen-go=protoc-gen-go.bin --go_out=. --go_opt=paths=source_relative wire.proto
//go:generate rm protoc-gen-go.bin

// Version is the wire version this node writes into every Envelope.
const Version = 1
