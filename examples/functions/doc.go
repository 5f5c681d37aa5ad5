// Package functions holds example MessageBus functions, one main package
// per directory, each built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fn.wasm ./examples/functions/<name>
//
// upper upper-cases each message (the README example); identity
// republishes each message unchanged; route sends each message to
// a topic chosen by its key and enriches it; wordcount counts words in
// durable state; filter passes valid JSON and dead-letters the rest.
package functions
