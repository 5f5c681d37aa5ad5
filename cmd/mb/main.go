// Command mb is MessageBus: a Pulsar-compatible message bus in one binary.
//
//	mb standalone            run a single-node broker with embedded storage
//	mb broker                run one broker of a cluster (etcd + S3)
//	mb cluster dev           run a local cluster: etcd members, S3 gateway, brokers
//	mb verify                check a stopped broker's data dir (read-only)
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		code, show := exitCode(err)
		if show {
			fmt.Fprintln(os.Stderr, "mb:", err)
		}
		os.Exit(code)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "mb",
		Short:         "MessageBus: a Pulsar-compatible message bus",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newStandaloneCommand())
	root.AddCommand(newBrokerCommand())
	root.AddCommand(newClusterCommand())
	root.AddCommand(newAdminCommand())
	root.AddCommand(newFunctionsCommand())
	root.AddCommand(newConnectorsCommand())
	root.AddCommand(newProduceCommand())
	root.AddCommand(newConsumeCommand())
	root.AddCommand(newTokensCommand())
	root.AddCommand(newAccessCommand())
	root.AddCommand(newRestoreCheckpointCommand())
	root.AddCommand(newVerifyCommand())
	return root
}
