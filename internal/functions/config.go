package functions

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/messagebus/messagebus/internal/naming"
)

// Processing guarantees, as Pulsar spells them.
const (
	AtMostOnce      = "ATMOST_ONCE"
	AtLeastOnce     = "ATLEAST_ONCE"
	EffectivelyOnce = "EFFECTIVELY_ONCE"
	// Manual leaves acknowledging to the function (function.Ack); outputs
	// are published as with ATLEAST_ONCE (Pulsar 3's MANUAL).
	Manual = "MANUAL"
)

// Subscription types a function may use (Pulsar derives them from
// retainOrdering/retainKeyOrdering; subscriptionType is an extension).
const (
	SubShared    = "Shared"
	SubKeyShared = "Key_Shared"
	SubFailover  = "Failover"
)

// Config is a function's configuration in the JSON shape of Pulsar's
// FunctionConfig (the fields pulsar-admin and pulsaradmin send); fields
// this worker does not use are accepted and kept.
type Config struct {
	Tenant    string `json:"tenant,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	ClassName string `json:"className,omitempty"`
	// Inputs lists input topics; TopicsPattern is a regular expression over
	// the topics of one namespace. At least one of them.
	Inputs        []string                   `json:"inputs,omitempty"`
	TopicsPattern string                     `json:"topicsPattern,omitempty"`
	InputSpecs    map[string]json.RawMessage `json:"inputSpecs,omitempty"`
	// Output is the default output topic ("" publishes nothing unless the
	// function names a topic).
	Output               string         `json:"output,omitempty"`
	LogTopic             string         `json:"logTopic,omitempty"`
	ProcessingGuarantees string         `json:"processingGuarantees,omitempty"`
	RetainOrdering       bool           `json:"retainOrdering,omitempty"`
	RetainKeyOrdering    bool           `json:"retainKeyOrdering,omitempty"`
	SubscriptionType     string         `json:"subscriptionType,omitempty"`
	UserConfig           map[string]any `json:"userConfig,omitempty"`
	Runtime              string         `json:"runtime,omitempty"`
	AutoAck              *bool          `json:"autoAck,omitempty"`
	MaxMessageRetries    *int           `json:"maxMessageRetries,omitempty"`
	DeadLetterTopic      string         `json:"deadLetterTopic,omitempty"`
	SubName              string         `json:"subName,omitempty"`
	// SubscriptionPosition is Latest (Pulsar's default) or Earliest.
	SubscriptionPosition string     `json:"subscriptionPosition,omitempty"`
	Parallelism          int        `json:"parallelism,omitempty"`
	Resources            *Resources `json:"resources,omitempty"`
	TimeoutMs            *int64     `json:"timeoutMs,omitempty"`
	CleanupSubscription  *bool      `json:"cleanupSubscription,omitempty"`
	// Extra keeps fields this worker does not interpret.
	Extra map[string]json.RawMessage `json:"-"`
}

// Resources are Pulsar's per-instance resource requests; RAM (bytes) caps
// an instance's memory when below the worker's --function-max-memory.
type Resources struct {
	CPU  float64 `json:"cpu,omitempty"`
	RAM  int64   `json:"ram,omitempty"`
	Disk int64   `json:"disk,omitempty"`
}

// MaxParallelism bounds the instances of one function on this node.
const MaxParallelism = 64

var nameRE = regexp.MustCompile(`^[-=:.\w]+$`)

// FQFN is the fully qualified function name tenant/namespace/name.
func (c *Config) FQFN() string { return c.Tenant + "/" + c.Namespace + "/" + c.Name }

// normalize fills the defaults and checks the config; the error says what
// to fix.
func (c *Config) normalize() error {
	for what, v := range map[string]string{"tenant": c.Tenant, "namespace": c.Namespace, "name": c.Name} {
		if v == "" {
			return fmt.Errorf("function %s is required", what)
		}
		if !nameRE.MatchString(v) {
			return fmt.Errorf("function %s %q has characters other than letters, digits and -=:._", what, v)
		}
	}
	switch strings.ToUpper(c.Runtime) {
	case "", "GO", "WASM":
	case RuntimeProcess:
		c.Runtime = RuntimeProcess
	default:
		return fmt.Errorf("runtime %q is not supported: functions are WebAssembly modules (runtime GO or WASM) or executables (runtime PROCESS)", c.Runtime)
	}
	if len(c.Inputs) == 0 && c.TopicsPattern == "" {
		for t := range c.InputSpecs {
			c.Inputs = append(c.Inputs, t)
		}
	}
	if len(c.Inputs) == 0 && c.TopicsPattern == "" {
		return fmt.Errorf("function needs input topics (inputs) or a topics pattern (topicsPattern)")
	}
	ns := naming.Namespace{Tenant: c.Tenant, Name: c.Namespace}
	for i, in := range c.Inputs {
		t, err := parseTopic(in, ns)
		if err != nil {
			return fmt.Errorf("input topic %q: %v", in, err)
		}
		c.Inputs[i] = t
	}
	if c.TopicsPattern != "" {
		p := c.TopicsPattern
		if !strings.Contains(p, "://") {
			p = "persistent://" + ns.String() + "/" + p
		}
		if _, err := regexp.Compile(p[strings.Index(p, "://")+3:]); err != nil {
			return fmt.Errorf("topics pattern %q: %v", c.TopicsPattern, err)
		}
		c.TopicsPattern = p
	}
	for _, f := range []*string{&c.Output, &c.LogTopic, &c.DeadLetterTopic} {
		if *f == "" {
			continue
		}
		t, err := parseTopic(*f, ns)
		if err != nil {
			return fmt.Errorf("topic %q: %v", *f, err)
		}
		*f = t
	}
	switch g := strings.ToUpper(c.ProcessingGuarantees); g {
	case "":
		c.ProcessingGuarantees = AtLeastOnce
	case AtMostOnce, AtLeastOnce, EffectivelyOnce, Manual:
		c.ProcessingGuarantees = g
	default:
		return fmt.Errorf("processingGuarantees %q: want ATMOST_ONCE, ATLEAST_ONCE, EFFECTIVELY_ONCE or MANUAL", c.ProcessingGuarantees)
	}

	switch strings.ToLower(c.SubscriptionType) {
	case "":
		switch {
		case c.ProcessingGuarantees == EffectivelyOnce || c.RetainOrdering:
			c.SubscriptionType = SubFailover
		case c.RetainKeyOrdering:
			c.SubscriptionType = SubKeyShared
		default:
			c.SubscriptionType = SubShared
		}
	case "shared":
		c.SubscriptionType = SubShared
	case "key_shared", "keyshared":
		c.SubscriptionType = SubKeyShared
	case "failover":
		c.SubscriptionType = SubFailover
	default:
		return fmt.Errorf("subscriptionType %q: want Shared, Key_Shared or Failover", c.SubscriptionType)
	}
	if c.ProcessingGuarantees == EffectivelyOnce && c.SubscriptionType != SubFailover {
		return fmt.Errorf("EFFECTIVELY_ONCE needs a Failover subscription (inputs are processed in order), not %s", c.SubscriptionType)
	}
	switch strings.ToLower(c.SubscriptionPosition) {
	case "", "latest":
		c.SubscriptionPosition = "Latest"
	case "earliest":
		c.SubscriptionPosition = "Earliest"
	default:
		return fmt.Errorf("subscriptionPosition %q: want Latest or Earliest", c.SubscriptionPosition)
	}
	if c.SubName == "" {
		c.SubName = c.FQFN() // Pulsar's default subscription name
	}
	if c.Parallelism == 0 {
		c.Parallelism = 1
	}
	if c.Parallelism < 1 || c.Parallelism > MaxParallelism {
		return fmt.Errorf("parallelism %d: want 1 to %d", c.Parallelism, MaxParallelism)
	}
	if c.MaxMessageRetries != nil && *c.MaxMessageRetries < -1 {
		return fmt.Errorf("maxMessageRetries %d: want -1 (unlimited) or more", *c.MaxMessageRetries)
	}
	if c.TimeoutMs != nil && *c.TimeoutMs < 0 {
		return fmt.Errorf("timeoutMs %d is negative", *c.TimeoutMs)
	}
	if c.Resources != nil && c.Resources.RAM < 0 {
		return fmt.Errorf("resources.ram %d is negative", c.Resources.RAM)
	}
	return nil
}

// manualAck reports whether the function acknowledges its inputs itself.
// That is processingGuarantees MANUAL only: as in Pulsar 3 (PIP-166) the
// guarantee decides, and autoAck is kept and returned but changes nothing,
// because pulsar-client-go's admin FunctionConfig sends autoAck=false
// whenever it is not set, which would otherwise turn off acknowledgement
// for every function such a client creates.
func (c *Config) manualAck() bool { return c.ProcessingGuarantees == Manual }

// parseTopic completes a short topic name within ns and validates it.
func parseTopic(s string, ns naming.Namespace) (string, error) {
	if !strings.Contains(s, "://") && strings.Count(s, "/") == 0 {
		s = "persistent://" + ns.String() + "/" + s
	}
	t, err := naming.ParseTopic(s)
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

func (c *Config) maxRetries() int {
	if c.MaxMessageRetries == nil {
		return -1
	}
	return *c.MaxMessageRetries
}

func (c *Config) cleanupSubscription() bool {
	return c.CleanupSubscription == nil || *c.CleanupSubscription
}

// configFields are the JSON names Config decodes itself; others go to Extra.
var configFields = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Fields(`tenant namespace name className inputs topicsPattern inputSpecs output logTopic
		processingGuarantees retainOrdering retainKeyOrdering subscriptionType userConfig runtime autoAck maxMessageRetries
		deadLetterTopic subName subscriptionPosition parallelism resources timeoutMs cleanupSubscription`) {
		m[f] = true
	}
	return m
}()

// UnmarshalJSON decodes Pulsar's FunctionConfig, keeping unknown fields.
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k, v := range all {
		if !configFields[k] && string(v) != "null" {
			if p.Extra == nil {
				p.Extra = map[string]json.RawMessage{}
			}
			p.Extra[k] = v
		}
	}
	*c = Config(p)
	return nil
}

// MarshalJSON encodes the config with its kept unknown fields.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	b, err := json.Marshal(plain(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// merge applies an update's fields over c (Pulsar's update keeps what the
// update leaves out).
func (c *Config) merge(u *Config) {
	if len(u.Inputs) > 0 || u.TopicsPattern != "" {
		c.Inputs, c.TopicsPattern = u.Inputs, u.TopicsPattern
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.ClassName, u.ClassName)
	set(&c.Output, u.Output)
	set(&c.LogTopic, u.LogTopic)
	set(&c.ProcessingGuarantees, u.ProcessingGuarantees)
	set(&c.SubscriptionType, u.SubscriptionType)
	set(&c.DeadLetterTopic, u.DeadLetterTopic)
	set(&c.SubscriptionPosition, u.SubscriptionPosition)
	set(&c.Runtime, u.Runtime)
	if u.SubName != "" && u.SubName != c.SubName {
		c.SubName = u.SubName
	}
	if u.UserConfig != nil {
		c.UserConfig = u.UserConfig
	}
	if u.Parallelism != 0 {
		c.Parallelism = u.Parallelism
	}
	if u.MaxMessageRetries != nil {
		c.MaxMessageRetries = u.MaxMessageRetries
	}
	if u.TimeoutMs != nil {
		c.TimeoutMs = u.TimeoutMs
	}
	if u.Resources != nil {
		c.Resources = u.Resources
	}
	if u.AutoAck != nil {
		c.AutoAck = u.AutoAck
	}
	if u.CleanupSubscription != nil {
		c.CleanupSubscription = u.CleanupSubscription
	}
	c.RetainOrdering = c.RetainOrdering || u.RetainOrdering
	c.RetainKeyOrdering = c.RetainKeyOrdering || u.RetainKeyOrdering
	for k, v := range u.Extra {
		if c.Extra == nil {
			c.Extra = map[string]json.RawMessage{}
		}
		c.Extra[k] = v
	}
}
