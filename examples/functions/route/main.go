// Command route routes each message by its key and enriches it. Keys look
// like "<region>:<id>"; the user config maps regions to topics:
//
//	{"routes": {"eu": "persistent://public/default/orders-eu"}, "source": "shop"}
//
// A message goes to its region's topic (the output topic when the region
// has no route) with the properties "region" and "source" added.
package main

import (
	"maps"
	"strings"

	"github.com/messagebus/messagebus/pkg/function"
)

func init() {
	function.Handle(func(ctx function.Context, in function.Message) error {
		region, _, found := strings.Cut(in.Key, ":")
		if !found {
			region = "unknown"
		}
		cfg := ctx.UserConfig()
		topic := ""
		if routes, ok := cfg["routes"].(map[string]any); ok {
			topic, _ = routes[region].(string)
		}
		props := maps.Clone(in.Properties)
		if props == nil {
			props = map[string]string{}
		}
		props["region"] = region
		if src, ok := cfg["source"].(string); ok {
			props["source"] = src
		}
		return ctx.Publish(topic, function.Message{Key: in.Key, Properties: props, Payload: in.Payload, EventTime: in.EventTime})
	})
}

func main() {}
