package main

import (
	"github.com/messagebus/messagebus/server"
	"github.com/spf13/cobra"
)

func newRestoreCheckpointCommand() *cobra.Command {
	var dataDir, store, from string
	cmd := &cobra.Command{
		Use:   "restore-checkpoint",
		Short: "Replace a damaged metadata store or ledger index with a checkpoint (broker stopped)",
		Long: `Replace a damaged store of a stopped broker with a checkpoint.

The store's directory is moved aside to <dir>.damaged-<UTC time> (kept for
inspection) and the newest checkpoint under <data-dir>/checkpoints/<store>/, or
--from, is copied in after checking that it opens whole. Changes made since the
checkpoint are lost: see README "Damaged metadata or index stores".

--store delayed only moves the delayed-delivery index aside; the broker
rebuilds it from the subscriptions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return server.RestoreCheckpoint(dataDir, store, from, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "./data", "the broker's data directory")
	f.StringVar(&store, "store", "", "metadata, index or delayed")
	f.StringVar(&from, "from", "", "checkpoint directory to restore (default: the newest)")
	cmd.MarkFlagRequired("store")
	return cmd
}
