package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Dynamic configuration: the broker settings that Pulsar lets an operator
// change at runtime (POST /admin/v2/brokers/configuration/{name}/{value}).
// The overrides live in the metadata store (meta.DynamicConfig); each
// broker applies them when it changes them and reloads them with every
// policy round, so the other brokers of a cluster follow within
// --policy-check-interval.

// dynConfigError is an error in Pulsar's words (capitalized, which
// errors.New is not meant for).
type dynConfigError string

func (e dynConfigError) Error() string { return string(e) }

// ErrNotDynamic refuses an update of a name that is not dynamic; the
// admin API answers 412 with Pulsar's words.
const ErrNotDynamic = dynConfigError("Can't update non-dynamic configuration")

// ErrInvalidDynamicValue refuses a value of the wrong type or range.
const ErrInvalidDynamicValue = dynConfigError("Invalid dynamic-config value")

// ErrDynamicNotSet answers the removal of a name that has no override.
var ErrDynamicNotSet = errors.New("dynamic configuration not set")

// dynamicConfig holds the current values of the dynamic settings.
type dynamicConfig struct {
	allowAutoSubscriptionCreation atomic.Bool
	maxUnackedPerConsumer         atomic.Int64
	maxUnackedPerSubscription     atomic.Int64
	maxSubscriptionsPerTopic      atomic.Int64
	maxTopicsPerNamespace         atomic.Int64
	subscriptionExpirationMinutes atomic.Int64
}

// dynSetting is one dynamic name: its current value as text and how to set it.
type dynSetting struct {
	get func(d *dynamicConfig) string
	set func(d *dynamicConfig, v string) error
}

func boolSetting(f func(d *dynamicConfig) *atomic.Bool) dynSetting {
	return dynSetting{
		get: func(d *dynamicConfig) string { return strconv.FormatBool(f(d).Load()) },
		set: func(d *dynamicConfig, v string) error {
			// As Pulsar (Boolean.parseBoolean): "true" in any case is
			// true, anything else false.
			f(d).Store(strings.EqualFold(v, "true"))
			return nil
		},
	}
}

// intSetting takes 0 or more (0: no limit, as the flags).
func intSetting(f func(d *dynamicConfig) *atomic.Int64) dynSetting {
	return dynSetting{
		get: func(d *dynamicConfig) string { return strconv.FormatInt(f(d).Load(), 10) },
		set: func(d *dynamicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 0 {
				return ErrInvalidDynamicValue
			}
			f(d).Store(n)
			return nil
		},
	}
}

// dynSettings are the dynamic names, Pulsar's, each a broker flag's value.
var dynSettings = map[string]dynSetting{
	"allowAutoSubscriptionCreation": boolSetting(func(d *dynamicConfig) *atomic.Bool { return &d.allowAutoSubscriptionCreation }),
	"maxUnackedMessagesPerConsumer": intSetting(func(d *dynamicConfig) *atomic.Int64 { return &d.maxUnackedPerConsumer }),
	"maxUnackedMessagesPerSubscription": intSetting(func(d *dynamicConfig) *atomic.Int64 {
		return &d.maxUnackedPerSubscription
	}),
	"maxSubscriptionsPerTopic": intSetting(func(d *dynamicConfig) *atomic.Int64 { return &d.maxSubscriptionsPerTopic }),
	"maxTopicsPerNamespace":    intSetting(func(d *dynamicConfig) *atomic.Int64 { return &d.maxTopicsPerNamespace }),
	"subscriptionExpirationTimeMinutes": intSetting(func(d *dynamicConfig) *atomic.Int64 {
		return &d.subscriptionExpirationMinutes
	}),
}

// initDynamic sets the dynamic values from the flags.
func (b *Broker) initDynamic() {
	d := &b.dyn
	d.allowAutoSubscriptionCreation.Store(!b.cfg.NoAutoSubscriptionCreation)
	d.maxUnackedPerConsumer.Store(int64(b.cfg.MaxUnackedMessagesPerConsumer))
	d.maxUnackedPerSubscription.Store(int64(b.cfg.MaxUnackedMessagesPerSubscription))
	d.maxSubscriptionsPerTopic.Store(int64(b.cfg.MaxSubscriptionsPerTopic))
	d.maxTopicsPerNamespace.Store(int64(b.cfg.MaxTopicsPerNamespace))
	d.subscriptionExpirationMinutes.Store(int64(b.cfg.SubscriptionExpirationTimeMinutes))
	b.dynFlags = b.runtimeDynamic()
}

func (b *Broker) runtimeDynamic() map[string]string {
	m := make(map[string]string, len(dynSettings))
	for name, s := range dynSettings {
		m[name] = s.get(&b.dyn)
	}
	return m
}

// DynamicConfigNames lists the names that can be updated at runtime.
func (b *Broker) DynamicConfigNames() []string {
	names := make([]string, 0, len(dynSettings))
	for name := range dynSettings {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// DynamicConfigValues returns the stored overrides.
func (b *Broker) DynamicConfigValues(ctx context.Context) (map[string]string, error) {
	m, _, err := b.meta.DynamicConfig(ctx)
	return m, err
}

// RuntimeConfig returns the values in force of the dynamic settings and of
// the broker's main static ones.
func (b *Broker) RuntimeConfig() map[string]string {
	m := b.runtimeDynamic()
	m["clusterName"] = b.cfg.ClusterName
	m["maxMessageSize"] = strconv.Itoa(b.cfg.MaxMessageSize)
	m["brokerDeduplicationEnabled"] = strconv.FormatBool(b.cfg.DeduplicationEnabled)
	m["defaultRetentionTimeInMinutes"] = strconv.Itoa(b.cfg.DefaultRetentionMinutes)
	m["defaultRetentionSizeInMB"] = strconv.FormatInt(b.cfg.DefaultRetentionSizeMB, 10)
	return m
}

// UpdateDynamicConfig stores an override and applies it.
func (b *Broker) UpdateDynamicConfig(ctx context.Context, name, value string) error {
	s, ok := dynSettings[name]
	if !ok {
		return ErrNotDynamic
	}
	var probe dynamicConfig
	if err := s.set(&probe, value); err != nil {
		return err
	}
	if err := b.meta.UpdateDynamicConfig(ctx, func(m map[string]string) error {
		m[name] = value
		return nil
	}); err != nil {
		return b.metadataError("dynamic configuration", err)
	}
	b.log.Info("dynamic configuration updated", "name", name, "value", value)
	return s.set(&b.dyn, value)
}

// DeleteDynamicConfig removes an override; the flag's value applies again.
func (b *Broker) DeleteDynamicConfig(ctx context.Context, name string) error {
	s, ok := dynSettings[name]
	if !ok {
		return ErrNotDynamic
	}
	err := b.meta.UpdateDynamicConfig(ctx, func(m map[string]string) error {
		if _, ok := m[name]; !ok {
			return fmt.Errorf("%w: %s", ErrDynamicNotSet, name)
		}
		delete(m, name)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrDynamicNotSet) {
			return err
		}
		return b.metadataError("dynamic configuration", err)
	}
	return s.set(&b.dyn, b.dynFlags[name])
}

// reloadDynamic applies the stored overrides over the flags' values; a
// value stored by a newer broker that this one cannot read is skipped.
func (b *Broker) reloadDynamic() {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OperationTimeout)
	defer cancel()
	m, _, err := b.meta.DynamicConfig(ctx)
	if err != nil {
		b.metadataError("dynamic configuration", err)
		return
	}
	for name, s := range dynSettings {
		v, ok := m[name]
		if !ok {
			v = b.dynFlags[name]
		}
		if err := s.set(&b.dyn, v); err != nil {
			b.log.Warn("dynamic configuration value skipped", "name", name, "value", v)
		}
	}
}
