// Command identity publishes every input unchanged to the output topic.
package main

import "github.com/messagebus/messagebus/pkg/function"

func init() {
	function.Handle(func(ctx function.Context, in function.Message) error {
		return ctx.Publish("", function.Message{Key: in.Key, Properties: in.Properties, Payload: in.Payload, EventTime: in.EventTime})
	})
}

func main() {}
