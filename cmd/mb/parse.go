package main

// Parsing of the values pulsar-admin and pulsar-client accept on their command
// lines (sizes like 10M, relative times like 3h, auth actions, message ids),
// so that commands copied from Pulsar's documentation work unchanged.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

// parseSize parses a byte count with an optional binary unit suffix, as
// pulsar-admin does: 4096, 10k, 10M, 16G, 3T (k/m/g/t in either case,
// optionally followed by b or ib: 10MB, 10MiB). -1 means unlimited.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return -1, nil
	}
	num := strings.TrimRightFunc(s, unicode.IsLetter)
	unit := strings.ToLower(s[len(num):])
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	mult := int64(1)
	switch unit {
	case "":
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	case "t":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("invalid size %q: unit must be k, M, G or T", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a non-negative number with an optional unit (10M, 1G) or -1", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// relativeUnits are the units of Pulsar's RelativeTimeUtil.
var relativeUnits = map[string]time.Duration{
	"s": time.Second,
	"m": time.Minute,
	"h": time.Hour,
	"d": 24 * time.Hour,
	"w": 7 * 24 * time.Hour,
	"y": 365 * 24 * time.Hour,
}

// parseRelativeTime parses a duration the way pulsar-admin does: an integer
// with an optional unit s, m, h, d, w or y (seconds when absent), e.g. 120,
// 100m, 3h, 2d. Go durations such as 1h30m are accepted too.
func parseRelativeTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	num, unit := s, "s"
	if last := s[len(s)-1:]; relativeUnits[last] != 0 {
		num, unit = s[:len(s)-1], last
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("invalid duration %q: negative", s)
		}
		if n > int64(math.MaxInt64/relativeUnits[unit]) {
			return 0, fmt.Errorf("invalid duration %q: too large", s)
		}
		return time.Duration(n) * relativeUnits[unit], nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 120 (seconds), 100m, 3h, 2d, 1w or 1h30m", s)
	}
	return d, nil
}

// parseTimeLimit parses a relative time into whole seconds; -1 (unlimited)
// is passed through.
func parseTimeLimit(s string) (int64, error) {
	if strings.TrimSpace(s) == "-1" {
		return -1, nil
	}
	d, err := parseRelativeTime(s)
	if err != nil {
		return 0, err
	}
	return int64(d / time.Second), nil
}

// retentionPolicies converts pulsar-admin's --size and --time into the
// REST body, which counts megabytes and minutes (both truncated, -1 kept).
func retentionPolicies(size, timeLimit string) (utils.RetentionPolicies, error) {
	bytes, err := parseSize(size)
	if err != nil {
		return utils.RetentionPolicies{}, err
	}
	secs, err := parseTimeLimit(timeLimit)
	if err != nil {
		return utils.RetentionPolicies{}, err
	}
	p := utils.RetentionPolicies{RetentionSizeInMB: -1, RetentionTimeInMinutes: -1}
	if bytes >= 0 {
		p.RetentionSizeInMB = bytes >> 20
	}
	if secs >= 0 {
		if secs/60 > math.MaxInt32 {
			return p, fmt.Errorf("retention time %q is too large", timeLimit)
		}
		p.RetentionTimeInMinutes = int(secs / 60)
	}
	return p, nil
}

// parseActions parses a comma-separated list of permission actions
// (produce, consume, functions, packages, sinks, sources).
func parseActions(s string) ([]utils.AuthAction, error) {
	var out []utils.AuthAction
	seen := map[utils.AuthAction]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		if part == "" {
			continue
		}
		a, err := utils.ParseAuthAction(part)
		if err != nil {
			return nil, fmt.Errorf("invalid action %q: want produce, consume, functions, packages, sinks or sources", part)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no actions given: use e.g. --actions produce,consume")
	}
	return out, nil
}

// parseProperties parses key=value pairs; values may contain '='.
func parseProperties(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("invalid property %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// parseMessageID parses earliest, latest or ledgerId:entryId[:partition[:batch]].
func parseMessageID(s string) (utils.MessageID, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "earliest":
		return utils.Earliest, nil
	case "latest":
		return utils.Latest, nil
	}
	id, err := utils.ParseMessageID(s)
	if err != nil {
		return utils.MessageID{}, fmt.Errorf("invalid message id %q: want earliest, latest or ledgerId:entryId", s)
	}
	return *id, nil
}

// parsePointInTime parses an absolute time (RFC 3339, e.g.
// 2024-05-01T10:00:00Z) or a relative time meaning that long before now (10m).
func parsePointInTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := parseRelativeTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2024-05-01T10:00:00Z) or a duration ago (10m, 2h, 1d)", s)
	}
	return now.Add(-d), nil
}

// parseSubscriptionType accepts pulsar-client's names in any case.
func parseSubscriptionType(s string) (pulsar.SubscriptionType, error) {
	switch strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s)) {
	case "exclusive":
		return pulsar.Exclusive, nil
	case "shared":
		return pulsar.Shared, nil
	case "failover":
		return pulsar.Failover, nil
	case "keyshared":
		return pulsar.KeyShared, nil
	}
	return 0, fmt.Errorf("invalid subscription type %q: want exclusive, shared, failover or key_shared", s)
}

// parseInitialPosition accepts earliest or latest.
func parseInitialPosition(s string) (pulsar.SubscriptionInitialPosition, error) {
	switch strings.ToLower(s) {
	case "earliest":
		return pulsar.SubscriptionPositionEarliest, nil
	case "latest":
		return pulsar.SubscriptionPositionLatest, nil
	}
	return 0, fmt.Errorf("invalid position %q: want earliest or latest", s)
}

// parseBacklogQuota builds a backlog quota from pulsar-admin's flags:
// destination_storage needs --limit, message_age needs --limit-time.
func parseBacklogQuota(limit, limitTime, policy, quotaType string) (utils.BacklogQuota, utils.BacklogQuotaType, error) {
	var q utils.BacklogQuota
	t, err := utils.ParseBacklogQuotaType(strings.ToLower(quotaType))
	if err != nil {
		return q, "", fmt.Errorf("invalid --type %q: want destination_storage or message_age", quotaType)
	}
	q.Policy, err = utils.ParseRetentionPolicy(strings.ToLower(policy))
	if err != nil {
		return q, "", fmt.Errorf("invalid --policy %q: want producer_request_hold, producer_exception or consumer_backlog_eviction", policy)
	}
	if limit != "" {
		if q.LimitSize, err = parseSize(limit); err != nil {
			return q, "", err
		}
	}
	if limitTime != "" {
		if q.LimitTime, err = parseTimeLimit(limitTime); err != nil {
			return q, "", err
		}
	}
	switch {
	case t == utils.DestinationStorage && limit == "":
		return q, "", errors.New("--limit is required for backlog quota type destination_storage")
	case t == utils.MessageAge && limitTime == "":
		return q, "", errors.New("--limit-time is required for backlog quota type message_age")
	}
	return q, t, nil
}
