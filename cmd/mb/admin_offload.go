package main

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

// offloadCommands are `mb admin topics offload` and `offload-status`, as
// pulsar-admin's (the offload point is a message id rather than a size
// threshold).
func offloadCommands(o *adminOptions) []*cobra.Command {
	var before string
	offload := topicCommand(o, "offload", "Offload a topic's entries before a message id to the object store (tiered storage)",
		func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			id, err := parseMessageID(before)
			if err != nil {
				return err
			}
			if err := c.api.Topics().OffloadWithContext(ctx, *t, id); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.out.w, "Offload of %s started\n", t)
			return err
		})
	offload.Flags().StringVarP(&before, "message-id", "m", "latest",
		"offload the entries before this message id (ledgerId:entryId; latest: everything written so far)")
	var wait bool
	status := topicCommand(o, "offload-status", "Show the status of a topic's last offload (NOT_RUN, RUNNING, SUCCESS, ERROR)",
		func(ctx context.Context, c *adminClient, t *utils.TopicName) error {
			for {
				st, err := c.api.Topics().OffloadStatusWithContext(ctx, *t)
				if err != nil {
					return err
				}
				if !wait || st.Status != utils.RUNNING {
					if c.out.json {
						return c.out.value(st)
					}
					first := st.FirstUnOffloadedMessage
					if st.LastError != "" {
						_, err = fmt.Fprintf(c.out.w, "%s: %s\n", st.Status, st.LastError)
						return err
					}
					_, err = fmt.Fprintf(c.out.w, "%s (first entry not offloaded: %d:%d)\n", st.Status, first.LedgerID, first.EntryID)
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		})
	status.Flags().BoolVarP(&wait, "wait-complete", "w", false, "wait while the offload runs")
	return []*cobra.Command{offload, status}
}
