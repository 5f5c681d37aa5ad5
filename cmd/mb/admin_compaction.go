package main

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

// compactionCommands are `mb admin topics compact` and `compaction-status`,
// as pulsar-admin's.
func compactionCommands(o *adminOptions) []*cobra.Command {
	compact := topicCommand(o, "compact", "Start the compaction of a topic (every partition of a partitioned one)",
		func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			if err := c.api.Topics().CompactWithContext(ctx, *t); err != nil {
				return err
			}
			_, err := fmt.Fprintf(c.out.w, "Compaction of %s started\n", t)
			return err
		})
	var wait bool
	status := topicCommand(o, "compaction-status", "Show the status of a topic's last compaction (NOT_RUN, RUNNING, SUCCESS, ERROR)",
		func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			for {
				st, err := c.api.Topics().CompactStatusWithContext(ctx, *t)
				if err != nil {
					return err
				}
				if !wait || st.Status != utils.RUNNING {
					if c.out.json {
						return c.out.value(st)
					}
					if st.LastError != "" {
						_, err = fmt.Fprintf(c.out.w, "%s: %s\n", st.Status, st.LastError)
						return err
					}
					_, err = fmt.Fprintln(c.out.w, st.Status)
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		})
	status.Flags().BoolVarP(&wait, "wait-complete", "w", false, "wait while the compaction runs")
	return []*cobra.Command{compact, status}
}
