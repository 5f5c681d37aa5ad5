// Package naming parses and validates Pulsar topic and namespace names:
// persistent://tenant/namespace/topic, the short forms clients accept, and the
// -partition-N suffix of partitioned topics. It depends on nothing else in the
// project.
package naming

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Domains of a topic.
const (
	Persistent    = "persistent"
	NonPersistent = "non-persistent"
)

// PartitionSuffix separates a partitioned topic's name from the partition index.
const PartitionSuffix = "-partition-"

// Default tenant and namespace of short topic names.
const (
	DefaultTenant    = "public"
	DefaultNamespace = "default"
)

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid name")

// entityPattern is what Pulsar accepts for tenant, cluster and namespace names.
var entityPattern = regexp.MustCompile(`^[-=:.\w]+$`)

// maxTopicLength bounds a full topic name; longer names are refused rather than stored.
const maxTopicLength = 1024

// Namespace is tenant/namespace.
type Namespace struct {
	Tenant string
	Name   string
}

func (n Namespace) String() string { return n.Tenant + "/" + n.Name }

// ParseNamespace parses "tenant/namespace".
func ParseNamespace(s string) (Namespace, error) {
	t, ns, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(ns, "/") {
		return Namespace{}, fmt.Errorf("%w: namespace %q must be tenant/namespace", ErrInvalid, s)
	}
	n := Namespace{Tenant: t, Name: ns}
	return n, n.Validate()
}

// Validate checks the tenant and namespace parts.
func (n Namespace) Validate() error {
	if err := ValidateEntity("tenant", n.Tenant); err != nil {
		return err
	}
	return ValidateEntity("namespace", n.Name)
}

// ValidateEntity checks a tenant, namespace or cluster name.
func ValidateEntity(kind, s string) error {
	if !entityPattern.MatchString(s) {
		return fmt.Errorf("%w: %s name %q (allowed: letters, digits, - _ = : .)", ErrInvalid, kind, s)
	}
	return nil
}

// Topic is a parsed topic name.
type Topic struct {
	Domain    string
	Namespace Namespace
	Local     string // name inside the namespace, including any -partition-N suffix
}

// ParseTopic parses a full or short topic name the way Pulsar clients do:
// "name" means persistent://public/default/name and "tenant/ns/name" means
// persistent://tenant/ns/name.
func ParseTopic(s string) (Topic, error) {
	if len(s) == 0 {
		return Topic{}, fmt.Errorf("%w: empty topic name", ErrInvalid)
	}
	if len(s) > maxTopicLength {
		return Topic{}, fmt.Errorf("%w: topic name longer than %d bytes", ErrInvalid, maxTopicLength)
	}
	domain := Persistent
	rest := s
	if d, r, ok := strings.Cut(s, "://"); ok {
		domain, rest = d, r
		if domain != Persistent && domain != NonPersistent {
			return Topic{}, fmt.Errorf("%w: topic %q: domain must be persistent or non-persistent", ErrInvalid, s)
		}
	} else if !strings.Contains(s, "/") {
		rest = DefaultTenant + "/" + DefaultNamespace + "/" + s
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return Topic{}, fmt.Errorf("%w: topic %q must be [domain://]tenant/namespace/topic or a short name", ErrInvalid, s)
	}
	t := Topic{Domain: domain, Namespace: Namespace{Tenant: parts[0], Name: parts[1]}, Local: parts[2]}
	return t, t.Validate()
}

// Validate checks every part of the name.
func (t Topic) Validate() error {
	if err := t.Namespace.Validate(); err != nil {
		return err
	}
	if t.Local == "" {
		return fmt.Errorf("%w: empty topic local name", ErrInvalid)
	}
	if strings.Contains(t.Local, "/") {
		return fmt.Errorf("%w: topic local name %q contains '/'", ErrInvalid, t.Local)
	}
	for _, r := range t.Local {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return fmt.Errorf("%w: topic local name %q contains a control or invalid character", ErrInvalid, t.Local)
		}
	}
	return nil
}

// String is the full name, e.g. persistent://public/default/t.
func (t Topic) String() string {
	return t.Domain + "://" + t.Namespace.Tenant + "/" + t.Namespace.Name + "/" + t.Local
}

// IsPersistent reports whether the topic is stored.
func (t Topic) IsPersistent() bool { return t.Domain == Persistent }

// PartitionIndex returns the partition index of a -partition-N topic, or -1.
func (t Topic) PartitionIndex() int {
	i := strings.LastIndex(t.Local, PartitionSuffix)
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(t.Local[i+len(PartitionSuffix):])
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Partitioned returns the name of the partitioned topic this partition belongs
// to; the topic itself when it is not a partition.
func (t Topic) Partitioned() Topic {
	if t.PartitionIndex() < 0 {
		return t
	}
	p := t
	p.Local = t.Local[:strings.LastIndex(t.Local, PartitionSuffix)]
	return p
}

// Partition returns the name of partition i of t.
func (t Topic) Partition(i int) Topic {
	p := t
	p.Local = t.Local + PartitionSuffix + strconv.Itoa(i)
	return p
}
