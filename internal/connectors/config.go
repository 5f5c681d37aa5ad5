package connectors

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/messagebus/messagebus/internal/naming"
)

// Kind is source or sink.
type Kind string

// The two kinds of connector.
const (
	KindSource Kind = "source"
	KindSink   Kind = "sink"
)

// Plural is the API's path word: sources or sinks.
func (k Kind) Plural() string { return string(k) + "s" }

// Config is Pulsar's SourceConfig and SinkConfig in one (JSON field names
// as pulsar-admin and pulsaradmin send them); fields of the other kind are
// refused.
type Config struct {
	Tenant    string `json:"tenant"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Archive names the connector type: "builtin://<type>" (what
	// pulsar-admin --source-type/--sink-type sends).
	Archive   string `json:"archive,omitempty"`
	ClassName string `json:"className,omitempty"`
	// Configs are the connector's own settings; Secrets maps setting names
	// to references (env:NAME, file:/path or vault:<path>#<field>) resolved
	// when an instance starts.
	Configs              map[string]any    `json:"configs,omitempty"`
	Secrets              map[string]string `json:"secrets,omitempty"`
	Parallelism          int               `json:"parallelism,omitempty"`
	ProcessingGuarantees string            `json:"processingGuarantees,omitempty"`

	// Source fields.
	TopicName string `json:"topicName,omitempty"`

	// Sink fields.
	Inputs                     []string `json:"inputs,omitempty"`
	TopicsPattern              string   `json:"topicsPattern,omitempty"`
	SourceSubscriptionName     string   `json:"sourceSubscriptionName,omitempty"`
	SourceSubscriptionPosition string   `json:"sourceSubscriptionPosition,omitempty"`
	CleanupSubscription        *bool    `json:"cleanupSubscription,omitempty"`
}

// FQN is tenant/namespace/name.
func (c *Config) FQN() string { return c.Tenant + "/" + c.Namespace + "/" + c.Name }

// Type is the built-in connector type named by Archive.
func (c *Config) Type() string { return strings.TrimPrefix(c.Archive, "builtin://") }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// normalize checks c for kind and fills defaults.
func (c *Config) normalize(kind Kind) error {
	ns := naming.Namespace{Tenant: c.Tenant, Name: c.Namespace}
	if err := ns.Validate(); err != nil {
		return err
	}
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("%s name %q: letters, digits, '_', '-' and '.'", kind, c.Name)
	}
	if c.Archive == "" {
		return fmt.Errorf("the %s type is missing: set archive to builtin://<type> (pulsar-admin --%s-type); types: GET /admin/v3/%s/builtin%s", kind, kind, kind.Plural(), kind.Plural())
	}
	if !strings.HasPrefix(c.Archive, "builtin://") {
		return fmt.Errorf("archive %q: only built-in connectors run here (builtin://<type>)", c.Archive)
	}
	b, ok := builtin(kind, c.Type())
	if !ok {
		return fmt.Errorf("no built-in %s of type %q; types: %s", kind, c.Type(), strings.Join(builtinNames(kind), ", "))
	}
	if c.Parallelism == 0 {
		c.Parallelism = 1
	}
	if c.Parallelism < 0 || c.Parallelism > 64 {
		return fmt.Errorf("parallelism %d: between 1 and 64", c.Parallelism)
	}
	if c.Parallelism > 1 && !b.Parallel {
		return fmt.Errorf("the %s %s runs one instance only (parallelism 1)", c.Type(), kind)
	}
	switch c.ProcessingGuarantees {
	case "":
		c.ProcessingGuarantees = "ATLEAST_ONCE"
	case "ATLEAST_ONCE":
	default:
		return fmt.Errorf("processingGuarantees %q: connectors deliver ATLEAST_ONCE", c.ProcessingGuarantees)
	}
	if err := checkSecrets(b, c); err != nil {
		return err
	}
	switch kind {
	case KindSource:
		if len(c.Inputs) > 0 || c.TopicsPattern != "" || c.SourceSubscriptionName != "" {
			return fmt.Errorf("inputs, topicsPattern and sourceSubscriptionName are sink fields")
		}
		if c.TopicName == "" && !b.TopicsFromConfig {
			return fmt.Errorf("topicName is required: the topic the source publishes to (pulsar-admin --destination-topic-name)")
		}
		if c.TopicName != "" {
			if _, err := naming.ParseTopic(c.TopicName); err != nil {
				return fmt.Errorf("topicName: %w", err)
			}
		}
	case KindSink:
		if c.TopicName != "" {
			return fmt.Errorf("topicName is a source field; a sink reads inputs or topicsPattern")
		}
		if len(c.Inputs) == 0 && c.TopicsPattern == "" {
			return fmt.Errorf("inputs or topicsPattern is required: the topics the sink reads")
		}
		for _, in := range c.Inputs {
			if _, err := naming.ParseTopic(in); err != nil {
				return fmt.Errorf("input %q: %w", in, err)
			}
		}
		if c.TopicsPattern != "" {
			if _, err := regexp.Compile(c.TopicsPattern); err != nil {
				return fmt.Errorf("topicsPattern: %w", err)
			}
		}
		if c.SourceSubscriptionName == "" {
			c.SourceSubscriptionName = c.FQN()
		}
		switch c.SourceSubscriptionPosition {
		case "":
			c.SourceSubscriptionPosition = "Earliest"
		case "Earliest", "Latest":
		default:
			return fmt.Errorf("sourceSubscriptionPosition %q: Earliest or Latest", c.SourceSubscriptionPosition)
		}
	}
	if _, err := b.validate(c.Configs); err != nil {
		return err
	}
	return nil
}

// merge overlays the fields set in u (update keeps the others).
func (c *Config) merge(u *Config) {
	if u.Archive != "" {
		c.Archive = u.Archive
	}
	if u.ClassName != "" {
		c.ClassName = u.ClassName
	}
	if u.Configs != nil {
		c.Configs = u.Configs
	}
	if u.Secrets != nil {
		c.Secrets = u.Secrets
	}
	if u.Parallelism != 0 {
		c.Parallelism = u.Parallelism
	}
	if u.ProcessingGuarantees != "" {
		c.ProcessingGuarantees = u.ProcessingGuarantees
	}
	if u.TopicName != "" {
		c.TopicName = u.TopicName
	}
	if u.Inputs != nil {
		c.Inputs = u.Inputs
	}
	if u.TopicsPattern != "" {
		c.TopicsPattern = u.TopicsPattern
	}
	if u.SourceSubscriptionPosition != "" {
		c.SourceSubscriptionPosition = u.SourceSubscriptionPosition
	}
	if u.CleanupSubscription != nil {
		c.CleanupSubscription = u.CleanupSubscription
	}
}

func (c *Config) cleanupSubscription() bool {
	return c.CleanupSubscription == nil || *c.CleanupSubscription
}
