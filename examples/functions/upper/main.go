// Command upper publishes each message upper-cased to the output topic: the
// README's five-minute example.
package main

import (
	"bytes"

	"github.com/messagebus/messagebus/pkg/function"
)

func init() {
	function.Handle(func(ctx function.Context, in function.Message) error {
		return ctx.Publish("", function.Message{Key: in.Key, Payload: bytes.ToUpper(in.Payload)})
	})
}

func main() {}
