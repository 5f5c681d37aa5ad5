package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

// `mb admin schemas`: pulsar-admin's schemas sub-commands over
// /admin/v2/schemas/{tenant}/{ns}/{topic}/... . Answers are decoded by hand
// (rest client) because pulsaradmin drops the version of GET .../schema and
// the answer of uploads and deletes.

// schemaPath is the schemas path of a topic (schemas are named without a
// domain, as in Pulsar).
func schemaPath(t *utils.TopicName, parts ...string) string {
	return restPath(append([]string{"schemas", t.GetTenant(), t.GetNamespace(), t.GetLocalName()}, parts...)...)
}

// schemaJSON is Pulsar's GetSchemaResponse.
type schemaJSON struct {
	Version    int64             `json:"version"`
	Type       string            `json:"type"`
	Timestamp  int64             `json:"timestamp"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties"`
}

func newSchemasCommand(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "schemas", Short: "Manage the schemas of topics (like pulsar-admin schemas)"}
	cmd.AddCommand(newSchemaGetCommand(o), newSchemaListCommand(o), newSchemaUploadCommand(o),
		newSchemaDeleteCommand(o), newSchemaCompatibilityCommand(o))
	return cmd
}

func newSchemaGetCommand(o *adminOptions) *cobra.Command {
	var version int64
	cmd := topicCommand(o, "get", "Show a topic's latest schema, or one version", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		path := schemaPath(t, "schema")
		if version >= 0 {
			path = schemaPath(t, "schema", strconv.FormatInt(version, 10))
		}
		var s schemaJSON
		if err := c.rest.GetWithContext(ctx, path, &s); err != nil {
			return err
		}
		return c.out.object(c.last(), s)
	})
	cmd.Flags().Int64Var(&version, "version", -1, "the version to show (default: the latest)")
	return cmd
}

func newSchemaListCommand(o *adminOptions) *cobra.Command {
	return topicCommand(o, "list", "List every version of a topic's schema", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		var all struct {
			Schemas []schemaJSON `json:"getSchemaResponses"`
		}
		if err := c.rest.GetWithContext(ctx, schemaPath(t, "schemas"), &all); err != nil {
			return err
		}
		if c.out.json {
			return c.out.rawJSON(c.last(), all)
		}
		rows := make([][]string, len(all.Schemas))
		for i, s := range all.Schemas {
			rows[i] = []string{strconv.FormatInt(s.Version, 10), s.Type, time.UnixMilli(s.Timestamp).UTC().Format(time.RFC3339), s.Data}
		}
		return c.out.table([]string{"VERSION", "TYPE", "CREATED", "SCHEMA"}, rows)
	})
}

// readSchemaFile reads a schema definition file in pulsar-admin's format:
// {"type": "AVRO", "schema": "<definition>", "properties": {}}.
func readSchemaFile(name string) (utils.PostSchemaPayload, error) {
	var p utils.PostSchemaPayload
	if name == "" {
		return p, errors.New("--filename is required: a JSON file {\"type\": \"AVRO\", \"schema\": \"...\", \"properties\": {}}")
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s is not a schema definition file {\"type\": ..., \"schema\": ..., \"properties\": {}}: %v", name, err)
	}
	if p.SchemaType == "" {
		return p, fmt.Errorf("%s has no \"type\" (AVRO, JSON, PROTOBUF, STRING, ...)", name)
	}
	if p.Properties == nil {
		p.Properties = map[string]string{}
	}
	return p, nil
}

func newSchemaUploadCommand(o *adminOptions) *cobra.Command {
	var file string
	cmd := topicCommand(o, "upload", "Upload a schema from a definition file; prints its version", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		p, err := readSchemaFile(file)
		if err != nil {
			return err
		}
		var v struct {
			Version int64 `json:"version"`
		}
		if err := c.rest.PostWithObjWithContext(ctx, schemaPath(t, "schema"), &p, &v); err != nil {
			return err
		}
		return c.out.object(c.last(), v)
	})
	cmd.Flags().StringVarP(&file, "filename", "f", "", `schema definition file: {"type": "AVRO", "schema": "...", "properties": {}}`)
	return cmd
}

func newSchemaDeleteCommand(o *adminOptions) *cobra.Command {
	var force bool
	cmd := topicCommand(o, "delete", "Delete a topic's schema", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		return c.rest.DeleteWithQueryParamsWithContext(ctx, schemaPath(t, "schema"), map[string]string{"force": strconv.FormatBool(force)})
	})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove every version instead of marking the schema deleted")
	return cmd
}

func newSchemaCompatibilityCommand(o *adminOptions) *cobra.Command {
	var file string
	cmd := topicCommand(o, "compatibility", "Check a schema definition file against a topic's schema", func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
		p, err := readSchemaFile(file)
		if err != nil {
			return err
		}
		var res map[string]any
		if err := c.rest.PostWithObjWithContext(ctx, schemaPath(t, "compatibility"), &p, &res); err != nil {
			return err
		}
		return c.out.object(c.last(), res)
	})
	cmd.Flags().StringVarP(&file, "filename", "f", "", `schema definition file: {"type": "AVRO", "schema": "...", "properties": {}}`)
	return cmd
}

// schemaPolicyCommands are pulsar-admin's namespace commands for the
// schema policies.
func schemaPolicyCommands(o *adminOptions) []*cobra.Command {
	var strategy string
	setStrategy := nsCommand(o, "set-schema-compatibility-strategy", "Set the schema compatibility strategy of a namespace",
		func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			st, err := utils.ParseSchemaCompatibilityStrategy(strings.ToUpper(strategy))
			if err != nil {
				return fmt.Errorf("invalid --compatibility %q: want one of ALWAYS_INCOMPATIBLE, ALWAYS_COMPATIBLE, BACKWARD, FORWARD, FULL, BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, FULL_TRANSITIVE, UNDEFINED", strategy)
			}
			return c.api.Namespaces().SetSchemaCompatibilityStrategyWithContext(ctx, *ns, st)
		})
	setStrategy.Flags().StringVarP(&strategy, "compatibility", "c", "", "the strategy (UNDEFINED: the broker default, FULL)")
	setStrategy.MarkFlagRequired("compatibility")

	boolCommand := func(use, short string, set func(context.Context, *adminClient, utils.NameSpaceName, bool) error) *cobra.Command {
		var enable, disable bool
		cmd := nsCommand(o, use, short, func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
			return set(ctx, c, *ns, enable)
		})
		cmd.Flags().BoolVarP(&enable, "enable", "e", false, "enable")
		cmd.Flags().BoolVarP(&disable, "disable", "d", false, "disable")
		cmd.MarkFlagsMutuallyExclusive("enable", "disable")
		cmd.MarkFlagsOneRequired("enable", "disable")
		return cmd
	}
	return []*cobra.Command{
		setStrategy,
		nsCommand(o, "get-schema-compatibility-strategy", "Show the schema compatibility strategy in force",
			func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
				st, err := c.api.Namespaces().GetSchemaCompatibilityStrategyWithContext(ctx, *ns)
				if err != nil {
					return err
				}
				return c.out.object(nil, st)
			}),
		boolCommand("set-is-allow-auto-update-schema", "Allow or refuse new schema versions from producers",
			func(ctx context.Context, c *adminClient, ns utils.NameSpaceName, v bool) error {
				return c.api.Namespaces().SetIsAllowAutoUpdateSchemaWithContext(ctx, ns, v)
			}),
		nsCommand(o, "get-is-allow-auto-update-schema", "Show whether producers may register new schema versions",
			func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
				v, err := c.api.Namespaces().GetIsAllowAutoUpdateSchemaWithContext(ctx, *ns)
				if err != nil {
					return err
				}
				return c.out.object(c.last(), v)
			}),
		boolCommand("set-schema-validation-enforce", "Refuse (or allow) producers without a schema on topics with one",
			func(ctx context.Context, c *adminClient, ns utils.NameSpaceName, v bool) error {
				return c.api.Namespaces().SetSchemaValidationEnforcedWithContext(ctx, ns, v)
			}),
		nsCommand(o, "get-schema-validation-enforce", "Show whether producers without a schema are refused on topics with one",
			func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
				v, err := c.api.Namespaces().GetSchemaValidationEnforcedWithContext(ctx, *ns)
				if err != nil {
					return err
				}
				return c.out.object(c.last(), v)
			}),
	}
}
