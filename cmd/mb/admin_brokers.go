package main

import (
	"context"
	"strings"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

// newBrokersCommand is mb admin brokers: the live brokers of a cluster.
func newBrokersCommand(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "brokers", Short: "List the live brokers of a cluster"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list CLUSTER",
		Short: "List the live brokers (HTTP host:port) of a cluster",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
			bs, err := c.api.Brokers().GetActiveBrokersWithContext(ctx, args[0])
			if err != nil {
				return err
			}
			return c.out.list(c.last(), bs)
		}),
	})
	return cmd
}

// namespaceBundleCommands are mb admin namespaces bundles|unload.
func namespaceBundleCommands(o *adminOptions) []*cobra.Command {
	bundles := nsCommand(o, "bundles", "Show the bundles (hash ranges) of a namespace", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		var b utils.BundlesData
		tenant, name, _ := strings.Cut(ns.String(), "/")
		if err := c.rest.GetWithContext(ctx, restPath("namespaces", tenant, name, "bundles"), &b); err != nil {
			return err
		}
		return c.out.list(c.last(), b.Boundaries)
	})
	var bundle string
	unload := nsCommand(o, "unload", "Unload a namespace's bundles (or one, --bundle): their topics move to another broker", func(ctx context.Context, c *adminClient, ns *utils.NameSpaceName) error {
		if bundle == "" {
			return c.api.Namespaces().UnloadWithContext(ctx, ns.String())
		}
		return c.api.Namespaces().UnloadNamespaceBundleWithContext(ctx, ns.String(), bundle)
	})
	unload.Flags().StringVarP(&bundle, "bundle", "b", "", "only this bundle range, e.g. 0x00000000_0x40000000 (default: every bundle)")
	return []*cobra.Command{bundles, unload}
}
