package main

// `mb functions`: pulsar-admin functions' sub-commands and flags, against
// /admin/v3/functions. Modules are WebAssembly files (--wasm, or --go as
// pulsar-admin names a Go function's file).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newFunctionsCommand() *cobra.Command {
	o := &adminOptions{}
	cmd := &cobra.Command{
		Use:   "functions",
		Short: "Manage functions: WebAssembly modules run on every message of their input topics (like pulsar-admin functions)",
		Long: `Create, update, inspect and trigger functions through /admin/v3/functions,
with pulsar-admin functions' sub-commands and flags. A function is a
WebAssembly module (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared),
given with --wasm (or --go, pulsar-admin's flag for a Go function's file).`,
		Args: cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.validate()
		},
	}
	o.register(cmd)
	cmd.AddCommand(
		functionUploadCommand(o, "create"),
		functionUploadCommand(o, "update"),
		functionSimpleCommand(o, "delete", "Delete a function (its subscription, code and state too)", http.MethodDelete, ""),
		functionSimpleCommand(o, "get", "Show a function's configuration", http.MethodGet, ""),
		functionListCommand(o),
		functionSimpleCommand(o, "status", "Show the status of a function's instances", http.MethodGet, "status"),
		functionSimpleCommand(o, "stats", "Show the processing stats of a function's instances", http.MethodGet, "stats"),
		functionSimpleCommand(o, "start", "Start a function (or one instance)", http.MethodPost, "start"),
		functionSimpleCommand(o, "stop", "Stop a function (or one instance)", http.MethodPost, "stop"),
		functionSimpleCommand(o, "restart", "Restart a function (or one instance)", http.MethodPost, "restart"),
		functionTriggerCommand(o),
		functionStateCommand(o),
		functionPutStateCommand(o),
	)
	return cmd
}

// fnName is --tenant/--namespace/--name or --fqfn.
type fnName struct{ tenant, namespace, name, fqfn string }

func (n *fnName) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&n.tenant, "tenant", "public", "the function's tenant")
	f.StringVar(&n.namespace, "namespace", "default", "the function's namespace")
	f.StringVar(&n.name, "name", "", "the function's name")
	f.StringVar(&n.fqfn, "fqfn", "", "the fully qualified name tenant/namespace/name (instead of the three flags)")
}

func (n *fnName) resolve() error {
	if n.fqfn != "" {
		parts := strings.Split(n.fqfn, "/")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return fmt.Errorf("invalid --fqfn %q: want tenant/namespace/name", n.fqfn)
		}
		n.tenant, n.namespace, n.name = parts[0], parts[1], parts[2]
	}
	if n.name == "" {
		return errors.New("--name (or --fqfn) is required")
	}
	return nil
}

func (n *fnName) path(sub ...string) string {
	p := "/admin/v3/functions/" + url.PathEscape(n.tenant) + "/" + url.PathEscape(n.namespace) + "/" + url.PathEscape(n.name)
	for _, s := range sub {
		if s != "" {
			p += "/" + s
		}
	}
	return p
}

// do sends one request and returns the answer's body; a non-2xx answer
// becomes the server's reason.
func (c *adminClient) do(ctx context.Context, method, path, contentType string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.rest.ServiceURL+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.rest.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(b, &e) == nil && e.Reason != "" {
			return nil, errors.New(e.Reason)
		}
		return nil, fmt.Errorf("%s %s: HTTP %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// functionFlags are create's and update's flags, pulsar-admin's names.
type functionFlags struct {
	fnName
	configFile, inputs, topicsPattern, output, logTopic, guarantees, subName, subPosition, subType string
	userConfig, wasm, goFile, executable, jar, py, deadLetter, className                           string
	parallelism, maxRetries                                                                        int
	timeoutMs, ram, disk                                                                           int64
	cpu                                                                                            float64
	retainOrdering, retainKeyOrdering, cleanupSubscription                                         bool
}

func functionUploadCommand(o *adminOptions, verb string) *cobra.Command {
	ff := &functionFlags{}
	short := "Create a function from a WebAssembly module"
	if verb == "update" {
		short = "Update a function's configuration and/or module (flags left out keep their values)"
	}
	cmd := &cobra.Command{
		Use:   verb,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			cfg, module, err := ff.config(verb)
			if err != nil {
				return err
			}
			var body bytes.Buffer
			w := multipart.NewWriter(&body)
			js, err := json.Marshal(cfg)
			if err != nil {
				return err
			}
			if err := w.WriteField("functionConfig", string(js)); err != nil {
				return err
			}
			if module != "" {
				code, err := os.ReadFile(module)
				if err != nil {
					return fmt.Errorf("read module: %w", err)
				}
				part, err := w.CreateFormFile("data", filepath.Base(module))
				if err != nil {
					return err
				}
				part.Write(code)
			}
			w.Close()
			method := http.MethodPost
			if verb == "update" {
				method = http.MethodPut
			}
			if _, err := c.do(ctx, method, ff.path(), w.FormDataContentType(), &body); err != nil {
				return err
			}
			past := map[string]string{"create": "Created", "update": "Updated"}[verb]
			_, err = fmt.Fprintf(c.out.w, "%s function %s/%s/%s\n", past, ff.tenant, ff.namespace, ff.name)
			return err
		}),
	}
	ff.register(cmd)
	f := cmd.Flags()
	f.StringVar(&ff.configFile, "function-config-file", "", "a FunctionConfig file (YAML or JSON); flags override its fields")
	f.StringVar(&ff.inputs, "inputs", "", "comma-separated input topics")
	f.StringVar(&ff.topicsPattern, "topics-pattern", "", "input topics as a regular expression over the namespace's topics")
	f.StringVar(&ff.output, "output", "", "default output topic")
	f.StringVar(&ff.logTopic, "log-topic", "", "topic the function's log lines are published to")
	f.StringVar(&ff.guarantees, "processing-guarantees", "", "ATMOST_ONCE, ATLEAST_ONCE (default), EFFECTIVELY_ONCE or MANUAL (the function acks its inputs)")
	f.StringVar(&ff.subName, "subs-name", "", "subscription name on the inputs (default tenant/namespace/name)")
	f.StringVar(&ff.subName, "subscription-name", "", "same as --subs-name")
	f.StringVar(&ff.subPosition, "subs-position", "", "where a new subscription starts: Latest (default) or Earliest")
	f.StringVar(&ff.subType, "subscription-type", "", "Shared (default), Key_Shared or Failover (EFFECTIVELY_ONCE and --retain-ordering imply Failover)")
	f.StringVar(&ff.userConfig, "user-config", "", "user config as a JSON object, read by the function with ctx.UserConfig()")
	f.StringVar(&ff.wasm, "wasm", "", "the function's WebAssembly module file")
	f.StringVar(&ff.goFile, "go", "", "same as --wasm (pulsar-admin's flag for a Go function)")
	f.StringVar(&ff.executable, "executable", "", "an executable to run as a process function (sets runtime PROCESS)")
	f.StringVar(&ff.jar, "jar", "", "not supported: functions are WebAssembly modules (--wasm)")
	f.StringVar(&ff.py, "py", "", "not supported: functions are WebAssembly modules (--wasm)")
	f.StringVar(&ff.className, "classname", "", "kept in the configuration; not used by WebAssembly functions")
	f.StringVar(&ff.deadLetter, "dead-letter-topic", "", "topic messages go to after --max-message-retries failed attempts")
	f.IntVar(&ff.parallelism, "parallelism", 0, "number of instances (default 1)")
	f.IntVar(&ff.maxRetries, "max-message-retries", 0, "failed attempts before a message goes to --dead-letter-topic")
	f.Int64Var(&ff.timeoutMs, "timeout-ms", 0, "time budget of one call in milliseconds (takes effect when below the worker's --function-call-timeout)")
	f.Int64Var(&ff.ram, "ram", 0, "memory cap of each instance in bytes (at most the worker's --function-max-memory)")
	f.Float64Var(&ff.cpu, "cpu", 0, "kept in the configuration (instances are not CPU-limited beyond the call budget)")
	f.Int64Var(&ff.disk, "disk", 0, "kept in the configuration (functions have no file system)")
	f.BoolVar(&ff.retainOrdering, "retain-ordering", false, "process messages in order (a Failover subscription)")
	f.BoolVar(&ff.retainKeyOrdering, "retain-key-ordering", false, "process each key's messages in order (a Key_Shared subscription)")
	f.BoolVar(&ff.cleanupSubscription, "cleanup-subscription", true, "delete the input subscription when the function is deleted")
	return cmd
}

// config builds the FunctionConfig JSON (a map, so that only what was set
// is sent: update keeps the rest) and returns the module file.
func (ff *functionFlags) config(verb string) (map[string]any, string, error) {
	cfg := map[string]any{}
	if ff.configFile != "" {
		b, err := os.ReadFile(ff.configFile)
		if err != nil {
			return nil, "", fmt.Errorf("read --function-config-file: %w", err)
		}
		js, err := yaml.YAMLToJSON(b)
		if err == nil {
			err = json.Unmarshal(js, &cfg)
		}
		if err != nil {
			return nil, "", fmt.Errorf("--function-config-file %s: %w", ff.configFile, err)
		}
		for k, dst := range map[string]*string{"tenant": &ff.tenant, "namespace": &ff.namespace, "name": &ff.name} {
			if v, ok := cfg[k].(string); ok && v != "" && ff.fqfn == "" {
				*dst = v
			}
		}
	}
	if err := ff.resolve(); err != nil {
		return nil, "", err
	}
	if ff.jar != "" || ff.py != "" {
		return nil, "", errors.New("--jar and --py are not supported: functions are WebAssembly modules, given with --wasm (or --go)")
	}
	module := ff.wasm
	if module == "" {
		module = ff.goFile
	}
	if ff.wasm != "" && ff.goFile != "" && ff.wasm != ff.goFile {
		return nil, "", errors.New("give the module once: --wasm or --go")
	}
	if ff.executable != "" {
		if module != "" {
			return nil, "", errors.New("give either a module (--wasm, --go) or an executable (--executable)")
		}
		module = ff.executable
		cfg["runtime"] = "PROCESS"
	}
	if module == "" {
		if v, ok := cfg["go"].(string); ok {
			module = v
		}
	}
	delete(cfg, "go")
	if verb == "create" && module == "" {
		return nil, "", errors.New("--wasm (or --executable) is required: the function's WebAssembly module (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fn.wasm)")
	}
	cfg["tenant"], cfg["namespace"], cfg["name"] = ff.tenant, ff.namespace, ff.name
	set := func(k, v string) {
		if v != "" {
			cfg[k] = v
		}
	}
	if ff.inputs != "" {
		var ins []string
		for _, s := range strings.Split(ff.inputs, ",") {
			if s = strings.TrimSpace(s); s != "" {
				ins = append(ins, s)
			}
		}
		cfg["inputs"] = ins
	}
	set("topicsPattern", ff.topicsPattern)
	set("output", ff.output)
	set("logTopic", ff.logTopic)
	set("processingGuarantees", strings.ToUpper(ff.guarantees))
	set("subName", ff.subName)
	set("subscriptionPosition", ff.subPosition)
	set("subscriptionType", ff.subType)
	set("deadLetterTopic", ff.deadLetter)
	set("className", ff.className)
	if ff.userConfig != "" {
		var uc map[string]any
		if err := json.Unmarshal([]byte(ff.userConfig), &uc); err != nil {
			return nil, "", fmt.Errorf("--user-config: want a JSON object: %w", err)
		}
		cfg["userConfig"] = uc
	}
	if ff.parallelism != 0 {
		cfg["parallelism"] = ff.parallelism
	}
	if ff.maxRetries != 0 {
		cfg["maxMessageRetries"] = ff.maxRetries
	}
	if ff.timeoutMs != 0 {
		cfg["timeoutMs"] = ff.timeoutMs
	}
	if ff.ram != 0 || ff.cpu != 0 || ff.disk != 0 {
		cfg["resources"] = map[string]any{"ram": ff.ram, "cpu": ff.cpu, "disk": ff.disk}
	}
	if ff.retainOrdering {
		cfg["retainOrdering"] = true
	}
	if ff.retainKeyOrdering {
		cfg["retainKeyOrdering"] = true
	}
	if verb == "create" || !ff.cleanupSubscription {
		cfg["cleanupSubscription"] = ff.cleanupSubscription
	}
	return cfg, module, nil
}

func functionSimpleCommand(o *adminOptions, use, short, method, op string) *cobra.Command {
	n := &fnName{}
	instance := -1
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			if err := n.resolve(); err != nil {
				return err
			}
			path := n.path(op)
			if instance >= 0 {
				path = n.path(strconv.Itoa(instance), op)
			}
			b, err := c.do(ctx, method, path, "", nil)
			if err != nil {
				return err
			}
			switch use {
			case "get", "status", "stats":
				return c.out.object(b, nil)
			}
			past := map[string]string{"delete": "Deleted", "start": "Started", "stop": "Stopped", "restart": "Restarted"}[use]
			_, err = fmt.Fprintf(c.out.w, "%s function %s/%s/%s\n", past, n.tenant, n.namespace, n.name)
			return err
		}),
	}
	n.register(cmd)
	if op != "" {
		cmd.Flags().IntVar(&instance, "instance-id", -1, "one instance (default: all)")
	}
	return cmd
}

func functionListCommand(o *adminOptions) *cobra.Command {
	var tenant, namespace string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a namespace's functions",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			b, err := c.do(ctx, http.MethodGet, "/admin/v3/functions/"+url.PathEscape(tenant)+"/"+url.PathEscape(namespace), "", nil)
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

func functionTriggerCommand(o *adminOptions) *cobra.Command {
	n := &fnName{}
	var value, file, topic string
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Run a function once on a value and print its first output (the outputs are published)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			if err := n.resolve(); err != nil {
				return err
			}
			if (value == "") == (file == "") {
				return errors.New("give one of --trigger-value and --trigger-file")
			}
			var body bytes.Buffer
			w := multipart.NewWriter(&body)
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				part, _ := w.CreateFormFile("dataStream", filepath.Base(file))
				part.Write(b)
			} else {
				w.WriteField("data", value)
			}
			if topic != "" {
				w.WriteField("topic", topic)
			}
			w.Close()
			out, err := c.do(ctx, http.MethodPost, n.path("trigger"), w.FormDataContentType(), &body)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.out.w, string(out))
			return err
		}),
	}
	n.register(cmd)
	cmd.Flags().StringVar(&value, "trigger-value", "", "the message payload")
	cmd.Flags().StringVar(&file, "trigger-file", "", "a file holding the message payload")
	cmd.Flags().StringVar(&topic, "topic", "", "the input topic the value seems to come from (default: the first input)")
	return cmd
}

func functionStateCommand(o *adminOptions) *cobra.Command {
	n := &fnName{}
	var key string
	cmd := &cobra.Command{
		Use:     "state",
		Aliases: []string{"querystate"},
		Short:   "Show one key of a function's state (counters as numberValue)",
		Args:    cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			if err := n.resolve(); err != nil {
				return err
			}
			if key == "" {
				return errors.New("--key is required")
			}
			b, err := c.do(ctx, http.MethodGet, n.path("state", url.PathEscape(key)), "", nil)
			if err != nil {
				return err
			}
			return c.out.object(b, nil)
		}),
	}
	n.register(cmd)
	cmd.Flags().StringVarP(&key, "key", "k", "", "the state key")
	return cmd
}

func functionPutStateCommand(o *adminOptions) *cobra.Command {
	n := &fnName{}
	var state string
	cmd := &cobra.Command{
		Use:   "putstate",
		Short: `Write one key of a function's state: --state '{"key":"k","stringValue":"v"}' (or "numberValue": 5)`,
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
			if err := n.resolve(); err != nil {
				return err
			}
			var sv struct {
				Key string `json:"key"`
			}
			if err := json.Unmarshal([]byte(state), &sv); err != nil || sv.Key == "" {
				return errors.New(`--state: want a FunctionState JSON object with a key, e.g. {"key":"k","stringValue":"v"}`)
			}
			if _, err := c.do(ctx, http.MethodPost, n.path("state", url.PathEscape(sv.Key)), "application/json", strings.NewReader(state)); err != nil {
				return err
			}
			_, err := fmt.Fprintf(c.out.w, "Wrote state key %s of %s/%s/%s\n", sv.Key, n.tenant, n.namespace, n.name)
			return err
		}),
	}
	n.register(cmd)
	cmd.Flags().StringVar(&state, "state", "", "FunctionState JSON")
	return cmd
}
