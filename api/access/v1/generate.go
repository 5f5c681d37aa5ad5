// Package accessv1 is the generated Go code of the self-service access API
// (access.proto). Regenerate with `go generate` (needs protoc,
// protoc-gen-go and protoc-gen-go-grpc).
package accessv1

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative access.proto
