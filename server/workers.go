package server

import (
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/messagebus/messagebus/internal/functions"
	"github.com/messagebus/messagebus/internal/supervise"
)

// Instance placement of the functions and connectors workers. Standalone,
// the node runs every instance (supervise.Local). In cluster mode each
// instance is claimed by one broker whose worker is enabled
// (cluster.Workers); a broker with a worker disabled still has the
// worker's manager, which answers the admin API (reading what the running
// broker publishes in etcd) but claims no instance.

// placement is the workers' placement: nil (supervise.Local) standalone.
func (s *Server) placement() supervise.Placement {
	if s.workers == nil {
		return nil
	}
	return s.workers
}

// workerID names this node in the status of the instances it runs: the
// broker id in cluster mode, else the advertised pulsar:// URL.
func (s *Server) workerID() string {
	if s.owner != nil {
		return s.owner.Self().ID
	}
	return s.advertisedBrokerURL()
}

// startWorkers begins placing instances (cluster mode), on this broker
// for the workers that are enabled here.
func (s *Server) startWorkers() {
	if s.workers == nil {
		return
	}
	var kinds []string
	if s.functions != nil && !s.opts.Functions.Disabled {
		kinds = append(kinds, functions.KindFunction)
	}
	if s.connectors != nil && !s.opts.Connectors.Disabled {
		kinds = append(kinds, string(connectors.KindSource), string(connectors.KindSink))
	}
	s.workers.Start(kinds...)
}
