// Command filter passes JSON objects that have a non-empty "id" to the
// output topic and sends everything else to a dead-letter topic: the user
// config's "deadLetterTopic", else the input topic with "-DLQ" appended.
// The dead letter carries the reason in the "error" property.
package main

import (
	"encoding/json"

	"github.com/messagebus/messagebus/pkg/function"
)

func init() {
	function.Handle(func(ctx function.Context, in function.Message) error {
		var doc struct {
			ID string `json:"id"`
		}
		reason := ""
		if err := json.Unmarshal(in.Payload, &doc); err != nil {
			reason = "not a JSON object: " + err.Error()
		} else if doc.ID == "" {
			reason = `missing "id"`
		}
		if reason == "" {
			return ctx.Publish("", function.Message{Key: in.Key, Properties: in.Properties, Payload: in.Payload})
		}
		dlq, _ := ctx.UserConfig()["deadLetterTopic"].(string)
		if dlq == "" {
			dlq = in.Topic + "-DLQ"
		}
		ctx.Log().Warn("dead-lettering a message", "id", in.MessageID, "reason", reason)
		return ctx.Publish(dlq, function.Message{Key: in.Key, Payload: in.Payload,
			Properties: map[string]string{"error": reason, "origin-topic": in.Topic, "origin-id": in.MessageID}})
	})
}

func main() {}
