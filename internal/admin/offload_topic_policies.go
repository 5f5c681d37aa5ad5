package admin

import (
	"net/http"
	"strings"

	"github.com/messagebus/messagebus/internal/meta"
)

// offloadPoliciesPolicy is the topic's .../{topic}/offloadPolicies (GET,
// POST, DELETE), Pulsar's OffloadPoliciesImpl JSON. Of it, the three
// thresholds apply: each set one overrides the namespace's policy of the
// same meaning for this topic; a null or absent one inherits it.
var offloadPoliciesPolicy = topicPolicy{
	what: "offload policies",
	get: func(tp *meta.TopicPolicies) any {
		if tp.OffloadPolicies == nil {
			return nil
		}
		return tp.OffloadPolicies
	},
	applied: func(p *meta.Policies) any {
		minus1 := int64(-1)
		return meta.OffloadPolicies{
			ThresholdInBytes:    valueOrPtr(p.OffloadThreshold, &minus1),
			ThresholdInSeconds:  valueOrPtr(p.OffloadThresholdInSeconds, &minus1),
			DeletionLagInMillis: p.OffloadDeletionLagMs,
		}
	},
	set: func(tp *meta.TopicPolicies, _ meta.Policies, body []byte) error {
		var op meta.OffloadPolicies
		if err := decode(body, &op, "offload policies"); err != nil {
			return err
		}
		if err := validateOffloadPolicies(&op); err != nil {
			return err
		}
		tp.OffloadPolicies = &op
		return nil
	},
	remove: func(tp *meta.TopicPolicies) { tp.OffloadPolicies = nil },
}

func valueOrPtr(v, def *int64) *int64 {
	if v == nil {
		return def
	}
	return v
}

// validateOffloadPolicies checks the values the broker applies and the
// driver (the broker's store is S3: Pulsar's "S3" or "aws-s3").
func validateOffloadPolicies(op *meta.OffloadPolicies) error {
	if op.ThresholdInBytes == nil && op.AutoTriggerSizeThresholdBytes != nil {
		op.ThresholdInBytes = op.AutoTriggerSizeThresholdBytes
	}
	for _, f := range []struct {
		name  string
		v     *int64
		least int64
	}{
		{"managedLedgerOffloadThresholdInBytes", op.ThresholdInBytes, -1},
		{"managedLedgerOffloadThresholdInSeconds", op.ThresholdInSeconds, -1},
		{"managedLedgerOffloadDeletionLagInMillis", op.DeletionLagInMillis, 0},
	} {
		if f.v != nil && *f.v < f.least {
			return errorf(http.StatusPreconditionFailed, "%s must be %d or more, not %d", f.name, f.least, *f.v)
		}
	}
	if d := op.Driver; d != "" && !strings.EqualFold(d, "s3") && !strings.EqualFold(d, "aws-s3") {
		return errorf(http.StatusPreconditionFailed, "offload driver %q is not supported: this broker offloads to S3 (S3, aws-s3)", d)
	}
	return nil
}
