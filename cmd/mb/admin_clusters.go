package main

import (
	"context"
	"errors"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/spf13/cobra"
)

func newClustersCommand(o *adminOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "clusters", Short: "Register, list and change clusters (the peers of geo-replication)"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List clusters",
			Args:  cobra.NoArgs,
			RunE: o.run(func(ctx context.Context, c *adminClient, _ []string) error {
				cs, err := c.api.Clusters().ListWithContext(ctx)
				if err != nil {
					return err
				}
				return c.out.list(c.last(), cs)
			}),
		},
		&cobra.Command{
			Use:   "get CLUSTER",
			Short: "Show a cluster's configuration",
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
				data, err := c.api.Clusters().GetWithContext(ctx, args[0])
				if err != nil {
					return err
				}
				return c.out.object(c.last(), data)
			}),
		},
		newClusterWriteCommand(o, "create"),
		newClusterWriteCommand(o, "update"),
		&cobra.Command{
			Use:   "delete CLUSTER",
			Short: "Forget a cluster (refused while a tenant allows it or a namespace replicates to it)",
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, c *adminClient, args []string) error {
				return c.api.Clusters().DeleteWithContext(ctx, args[0])
			}),
		},
	)
	return cmd
}

// newClusterWriteCommand builds `clusters create` and `clusters update`
// with pulsar-admin's flag names. update keeps what is not given.
func newClusterWriteCommand(o *adminOptions, verb string) *cobra.Command {
	var d utils.ClusterData
	cmd := &cobra.Command{
		Use:   verb + " CLUSTER",
		Short: map[string]string{"create": "Register a cluster", "update": "Change a cluster's URLs or credentials"}[verb],
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = o.run(func(ctx context.Context, c *adminClient, args []string) error {
		if !utils.CheckName(args[0]) {
			return errors.New("invalid cluster name " + args[0])
		}
		data := d
		if verb == "update" {
			cur, err := c.api.Clusters().GetWithContext(ctx, args[0])
			if err != nil {
				return err
			}
			keep := func(flag string, dst *string, v string) {
				if !cmd.Flags().Changed(flag) {
					*dst = v
				}
			}
			keep("url", &data.ServiceURL, cur.ServiceURL)
			keep("url-secure", &data.ServiceURLTls, cur.ServiceURLTls)
			keep("broker-url", &data.BrokerServiceURL, cur.BrokerServiceURL)
			keep("broker-url-secure", &data.BrokerServiceURLTls, cur.BrokerServiceURLTls)
			keep("auth-plugin", &data.AuthenticationPlugin, cur.AuthenticationPlugin)
			keep("auth-parameters", &data.AuthenticationParameters, cur.AuthenticationParameters)
			keep("tls-trust-certs-filepath", &data.BrokerClientTrustCertsFilePath, cur.BrokerClientTrustCertsFilePath)
			if !cmd.Flags().Changed("tls-enable") {
				data.BrokerClientTLSEnabled = cur.BrokerClientTLSEnabled
			}
			if data.AuthenticationParameters == "******" {
				return errors.New("the cluster's authenticationParameters are hidden from this role: give --auth-parameters")
			}
		}
		data.Name = args[0]
		if verb == "update" {
			return c.api.Clusters().UpdateWithContext(ctx, data)
		}
		return c.api.Clusters().CreateWithContext(ctx, data)
	})
	f := cmd.Flags()
	f.StringVar(&d.ServiceURL, "url", "", "the cluster's HTTP service URL (http://host:8080)")
	f.StringVar(&d.ServiceURLTls, "url-secure", "", "the cluster's HTTPS service URL (https://host:8443)")
	f.StringVar(&d.BrokerServiceURL, "broker-url", "", "the cluster's broker URL (pulsar://host:6650)")
	f.StringVar(&d.BrokerServiceURLTls, "broker-url-secure", "", "the cluster's TLS broker URL (pulsar+ssl://host:6651)")
	f.StringVar(&d.AuthenticationPlugin, "auth-plugin", "", "how replication authenticates to the cluster: org.apache.pulsar.client.impl.auth.AuthenticationToken (or \"token\")")
	f.StringVar(&d.AuthenticationParameters, "auth-parameters", "", "the credentials: token:<jwt>, file:<path>, or the bare token")
	f.BoolVar(&d.BrokerClientTLSEnabled, "tls-enable", false, "replicate to the cluster over TLS (its --broker-url-secure)")
	f.StringVar(&d.BrokerClientTrustCertsFilePath, "tls-trust-certs-filepath", "", "CA certificates that verify the cluster's TLS certificate")
	return cmd
}
