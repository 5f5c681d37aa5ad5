package main

// `mb connectors sources|sinks`: pulsar-admin sources' and sinks'
// sub-commands and flags, against /admin/v3/sources and /admin/v3/sinks.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newConnectorsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connectors",
		Short: "Manage connectors: built-in sources and sinks run by the node (like pulsar-admin sources and sinks)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(connectorKindCommand("source"), connectorKindCommand("sink"))
	return cmd
}

func connectorKindCommand(kind string) *cobra.Command {
	o := &adminOptions{}
	plural := kind + "s"
	cmd := &cobra.Command{
		Use:   plural,
		Short: "Manage " + plural + " through /admin/v3/" + plural,
		Args:  cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.validate()
		},
	}
	o.register(cmd)
	cmd.AddCommand(
		connectorUploadCommand(o, kind, "create"),
		connectorUploadCommand(o, kind, "update"),
		connectorSimpleCommand(o, kind, "delete", "Delete a "+kind+" (and its checkpoints)", http.MethodDelete, ""),
		connectorSimpleCommand(o, kind, "get", "Show a "+kind+"'s configuration (secrets as their references)", http.MethodGet, ""),
		connectorSimpleCommand(o, kind, "status", "Show the status of a "+kind+"'s instances", http.MethodGet, "status"),
		connectorSimpleCommand(o, kind, "start", "Start a "+kind+" (or one instance)", http.MethodPost, "start"),
		connectorSimpleCommand(o, kind, "stop", "Stop a "+kind+" (or one instance)", http.MethodPost, "stop"),
		connectorSimpleCommand(o, kind, "restart", "Restart a "+kind+" (or one instance)", http.MethodPost, "restart"),
		connectorListCommand(o, kind),
		connectorBuiltinsCommand(o, kind),
	)
	return cmd
}

type connName struct{ kind, tenant, namespace, name string }

func (n *connName) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&n.tenant, "tenant", "public", "the "+n.kind+"'s tenant")
	f.StringVar(&n.namespace, "namespace", "default", "the "+n.kind+"'s namespace")
	f.StringVar(&n.name, "name", "", "the "+n.kind+"'s name")
}

func (n *connName) path(sub ...string) (string, error) {
	if n.name == "" {
		return "", errors.New("--name is required")
	}
	p := "/admin/v3/" + n.kind + "s/" + url.PathEscape(n.tenant) + "/" + url.PathEscape(n.namespace) + "/" + url.PathEscape(n.name)
	for _, s := range sub {
		if s != "" {
			p += "/" + s
		}
	}
	return p, nil
}

type connectorFlags struct {
	connName
	configFile, typ, archive, topic, inputs, topicsPattern, subName, subPosition, configs, guarantees string
	parallelism                                                                                       int
}

func connectorUploadCommand(o *adminOptions, kind, verb string) *cobra.Command {
	cf := &connectorFlags{connName: connName{kind: kind}}
	cmd := &cobra.Command{
		Use:   verb,
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a " + kind + " (update keeps the fields left out)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			cfg, err := cf.config()
			if err != nil {
				return err
			}
			path, err := cf.path()
			if err != nil {
				return err
			}
			js, err := json.Marshal(cfg)
			if err != nil {
				return err
			}
			var body bytes.Buffer
			w := multipart.NewWriter(&body)
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%sConfig"`, kind))
			h.Set("Content-Type", "application/json")
			part, err := w.CreatePart(h)
			if err != nil {
				return err
			}
			part.Write(js)
			w.Close()
			method := http.MethodPost
			if verb == "update" {
				method = http.MethodPut
			}
			if _, err := c.do(ctx, method, path, w.FormDataContentType(), &body); err != nil {
				return err
			}
			past := map[string]string{"create": "Created", "update": "Updated"}[verb]
			_, err = fmt.Fprintf(c.out.w, "%s %s %s/%s/%s\n", past, kind, cf.tenant, cf.namespace, cf.name)
			return err
		}),
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&cf.configFile, kind+"-config-file", "", "a "+strings.ToUpper(kind[:1])+kind[1:]+"Config file (YAML or JSON); flags override its fields")
	f.StringVar(&cf.typ, kind+"-type", "", "the built-in connector type (see builtins)")
	f.StringVar(&cf.archive, "archive", "", "builtin://<type> (same as --"+kind+"-type)")
	f.StringVar(&cf.configs, kind+"-config", "", "the connector's configs as a JSON object")
	f.StringVar(&cf.guarantees, "processing-guarantees", "", "ATLEAST_ONCE (the only one)")
	f.IntVar(&cf.parallelism, "parallelism", 0, "number of instances (default 1; where the type allows more)")
	if kind == "source" {
		f.StringVar(&cf.topic, "destination-topic-name", "", "the topic the source publishes to")
	} else {
		f.StringVar(&cf.inputs, "inputs", "", "comma-separated topics the sink reads")
		f.StringVar(&cf.topicsPattern, "topics-pattern", "", "the topics the sink reads, as a regular expression")
		f.StringVar(&cf.subName, "subs-name", "", "the sink's subscription (default tenant/namespace/name)")
		f.StringVar(&cf.subPosition, "subs-position", "", "where a new subscription starts: Earliest (default) or Latest")
	}
	return cmd
}

// config builds the config JSON from the file and flags (a map: update
// sends only what was set).
func (cf *connectorFlags) config() (map[string]any, error) {
	cfg := map[string]any{}
	if cf.configFile != "" {
		b, err := os.ReadFile(cf.configFile)
		if err != nil {
			return nil, fmt.Errorf("read --%s-config-file: %w", cf.kind, err)
		}
		js, err := yaml.YAMLToJSON(b)
		if err == nil {
			err = json.Unmarshal(js, &cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("--%s-config-file %s: %w", cf.kind, cf.configFile, err)
		}
		for k, dst := range map[string]*string{"tenant": &cf.tenant, "namespace": &cf.namespace, "name": &cf.name} {
			if v, ok := cfg[k].(string); ok && v != "" {
				*dst = v
			}
		}
	}
	cfg["tenant"], cfg["namespace"], cfg["name"] = cf.tenant, cf.namespace, cf.name
	set := func(k, v string) {
		if v != "" {
			cfg[k] = v
		}
	}
	if cf.typ != "" {
		cfg["archive"] = "builtin://" + cf.typ
	}
	set("archive", cf.archive)
	set("topicName", cf.topic)
	set("topicsPattern", cf.topicsPattern)
	set("sourceSubscriptionName", cf.subName)
	set("sourceSubscriptionPosition", cf.subPosition)
	set("processingGuarantees", strings.ToUpper(cf.guarantees))
	if cf.inputs != "" {
		var ins []string
		for _, s := range strings.Split(cf.inputs, ",") {
			if s = strings.TrimSpace(s); s != "" {
				ins = append(ins, s)
			}
		}
		cfg["inputs"] = ins
	}
	if cf.configs != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(cf.configs), &m); err != nil {
			return nil, fmt.Errorf("--%s-config: want a JSON object: %w", cf.kind, err)
		}
		cfg["configs"] = m
	}
	if cf.parallelism != 0 {
		cfg["parallelism"] = cf.parallelism
	}
	return cfg, nil
}

func connectorSimpleCommand(o *adminOptions, kind, use, short, method, op string) *cobra.Command {
	n := &connName{kind: kind}
	instance := -1
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			var path string
			var err error
			if instance >= 0 {
				path, err = n.path(strconv.Itoa(instance), op)
			} else {
				path, err = n.path(op)
			}
			if err != nil {
				return err
			}
			b, err := c.do(ctx, method, path, "", nil)
			if err != nil {
				return err
			}
			if use == "get" || use == "status" {
				return c.out.object(b, nil)
			}
			past := map[string]string{"delete": "Deleted", "start": "Started", "stop": "Stopped", "restart": "Restarted"}[use]
			_, err = fmt.Fprintf(c.out.w, "%s %s %s/%s/%s\n", past, kind, n.tenant, n.namespace, n.name)
			return err
		}),
	}
	n.register(cmd)
	if op != "" {
		cmd.Flags().IntVar(&instance, "instance-id", -1, "one instance (default: all)")
	}
	return cmd
}

func connectorListCommand(o *adminOptions, kind string) *cobra.Command {
	var tenant, namespace string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a namespace's " + kind + "s",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			b, err := c.do(ctx, http.MethodGet, "/admin/v3/"+kind+"s/"+url.PathEscape(tenant)+"/"+url.PathEscape(namespace), "", nil)
			if err != nil {
				return err
			}
			var names []string
			if err := json.Unmarshal(b, &names); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			return c.out.list(b, names)
		}),
	}
	cmd.Flags().StringVar(&tenant, "tenant", "public", "tenant")
	cmd.Flags().StringVar(&namespace, "namespace", "default", "namespace")
	return cmd
}

func connectorBuiltinsCommand(o *adminOptions, kind string) *cobra.Command {
	return &cobra.Command{
		Use:     "available-" + kind + "s",
		Aliases: []string{"builtins"},
		Short:   "List the built-in " + kind + " types",
		Args:    cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			b, err := c.do(ctx, http.MethodGet, "/admin/v3/"+kind+"s/builtin"+kind+"s", "", nil)
			if err != nil {
				return err
			}
			return c.out.object(b, nil)
		}),
	}
}
