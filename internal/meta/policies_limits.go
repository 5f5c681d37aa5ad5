package meta

// PersistencePolicies is Pulsar's persistence policy (BookKeeper quorums and
// the mark-delete rate). MessageBus has no bookies: it is stored and
// returned so that tools that set it keep working, and not acted on.
type PersistencePolicies struct {
	BookkeeperEnsemble             int     `json:"bookkeeperEnsemble"`
	BookkeeperWriteQuorum          int     `json:"bookkeeperWriteQuorum"`
	BookkeeperAckQuorum            int     `json:"bookkeeperAckQuorum"`
	ManagedLedgerMaxMarkDeleteRate float64 `json:"managedLedgerMaxMarkDeleteRate"`
	ManagedLedgerStorageClassName  string  `json:"managedLedgerStorageClassName,omitempty"`
}

// BookieAffinityGroup is Pulsar's bookie affinity group of a namespace:
// stored and returned, not acted on.
type BookieAffinityGroup struct {
	BookkeeperAffinityGroupPrimary   string `json:"bookkeeperAffinityGroupPrimary"`
	BookkeeperAffinityGroupSecondary string `json:"bookkeeperAffinityGroupSecondary,omitempty"`
}

// limitsOver lays the topic's limits over p (see Over).
func (tp TopicPolicies) limitsOver(p *Policies) {
	if tp.MaxUnackedMessagesOnConsumer != nil {
		p.MaxUnackedMessagesPerConsumer = tp.MaxUnackedMessagesOnConsumer
	}
	if tp.MaxUnackedMessagesOnSubscription != nil {
		p.MaxUnackedMessagesPerSubscription = tp.MaxUnackedMessagesOnSubscription
	}
	if tp.MaxSubscriptionsPerTopic != nil {
		p.MaxSubscriptionsPerTopic = tp.MaxSubscriptionsPerTopic
	}
	if tp.MaxMessageSize != nil {
		p.MaxMessageSize = tp.MaxMessageSize
	}
	if tp.Persistence != nil {
		p.Persistence = tp.Persistence
	}
}
