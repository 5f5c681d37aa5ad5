package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/server"
)

func newClusterCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Local clusters for development"}
	cmd.AddCommand(newClusterDevCommand())
	return cmd
}

// devCredentials are the local gateway's root user.
const (
	devAccessKey = "mbdevaccess"
	devSecretKey = "mbdevsecret0123456789"
)

func newClusterDevCommand() *cobra.Command {
	var (
		brokers, members   int
		dir, s3Endpoint    string
		bucket, logLevel   string
		clusterName        string
		pathStyle          bool
		leaseTTL, walDelay time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster on loopback: embedded etcd members, an S3 server and N brokers",
		Long: `Run a development cluster in one process, on loopback: --etcd-members embedded etcd
members, the Versity S3 gateway (when installed: $VERSITYGW, $GOPATH/bin/versitygw or on
PATH; else give --s3-endpoint and AWS_* credentials), and --brokers brokers (0: none,
for brokers started with mb broker; the gateway's credentials are then printed). One
line per endpoint is printed. Data goes under --dir. Production runs external etcd and real S3.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if brokers < 0 || members < 1 {
				return fmt.Errorf("--brokers must be at least 0 and --etcd-members at least 1")
			}
			var l slog.Level
			if err := l.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("invalid --log-level %q", logLevel)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
			slog.SetDefault(log)
			return runClusterDev(cmd, log, devOptions{brokers: brokers, members: members, dir: dir, s3Endpoint: s3Endpoint,
				bucket: bucket, pathStyle: pathStyle, leaseTTL: leaseTTL, walDelay: walDelay, clusterName: clusterName})
		},
	}
	f := cmd.Flags()
	f.IntVar(&brokers, "brokers", 3, "number of brokers (0: only etcd and S3, for mb broker processes)")
	f.IntVar(&members, "etcd-members", 3, "number of embedded etcd members")
	f.StringVar(&dir, "dir", "./cluster-dev", "directory of the etcd members, the gateway's files and the brokers' scratch dirs")
	f.StringVar(&s3Endpoint, "s3-endpoint", "", "use this S3 server instead of starting the Versity gateway (credentials from AWS_* variables)")
	f.StringVar(&bucket, "bucket", "mb-dev", "bucket (created when missing)")
	f.BoolVar(&pathStyle, "path-style", true, "address the bucket in the URL path")
	f.DurationVar(&leaseTTL, "lease-ttl", 10*time.Second, "brokers' etcd lease")
	f.DurationVar(&walDelay, "wal-max-delay", 5*time.Millisecond, "longest wait of an append before its group commit")
	f.StringVar(&clusterName, "cluster-name", "standalone", "the brokers' cluster name (geo-replication: one name per cluster)")
	f.StringVar(&logLevel, "log-level", "warn", "log level of the brokers: debug, info, warn, error")
	return cmd
}

type devOptions struct {
	brokers, members   int
	dir, s3Endpoint    string
	bucket             string
	clusterName        string
	pathStyle          bool
	leaseTTL, walDelay time.Duration
}

func loopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func runClusterDev(cmd *cobra.Command, log *slog.Logger, o devOptions) error {
	out := cmd.OutOrStdout()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// etcd members.
	type mcfg struct{ name, client, peer string }
	var ms []mcfg
	var peers []string
	for i := range o.members {
		c, err := loopbackAddr()
		if err != nil {
			return err
		}
		p, err := loopbackAddr()
		if err != nil {
			return err
		}
		ms = append(ms, mcfg{fmt.Sprintf("etcd%d", i), "http://" + c, "http://" + p})
		peers = append(peers, fmt.Sprintf("etcd%d=http://%s", i, p))
	}
	var etcds []*embed.Etcd
	defer func() {
		for _, e := range etcds {
			e.Close()
		}
	}()
	started := make(chan error, len(ms))
	results := make([]*embed.Etcd, len(ms))
	for i, m := range ms {
		go func() {
			cu, _ := url.Parse(m.client)
			pu, _ := url.Parse(m.peer)
			cfg := embed.NewConfig()
			cfg.Name, cfg.Dir = m.name, filepath.Join(o.dir, m.name)
			cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
			cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
			cfg.InitialCluster = strings.Join(peers, ",")
			cfg.InitialClusterToken = "mb-cluster-dev"
			cfg.LogLevel = "fatal" // its errors while members stop are expected
			e, err := embed.StartEtcd(cfg)
			if err != nil {
				started <- fmt.Errorf("etcd member %s: %w", m.name, err)
				return
			}
			results[i] = e
			select {
			case <-e.Server.ReadyNotify():
				started <- nil
			case err := <-e.Err():
				started <- fmt.Errorf("etcd member %s: %w", m.name, err)
			case <-time.After(60 * time.Second):
				started <- fmt.Errorf("etcd member %s not ready after 60 s", m.name)
			}
		}()
	}
	var errs []error
	for range ms {
		errs = append(errs, <-started)
	}
	for _, e := range results {
		if e != nil {
			etcds = append(etcds, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var eps []string
	for _, m := range ms {
		fmt.Fprintf(out, "etcd    %s  %s\n", m.name, m.client)
		eps = append(eps, strings.TrimPrefix(m.client, "http://"))
	}

	// S3.
	endpoint := o.s3Endpoint
	if endpoint == "" {
		gw, err := startDevGateway(ctx, filepath.Join(o.dir, "s3"))
		if err != nil {
			return err
		}
		defer gw.stop()
		endpoint = gw.endpoint
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s3, err := objstore.NewS3(cctx, objstore.S3Options{Bucket: o.bucket, Endpoint: endpoint, PathStyle: o.pathStyle})
	if err == nil {
		err = s3.CreateBucket(cctx)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("bucket %s on %s: %w", o.bucket, endpoint, err)
	}
	fmt.Fprintf(out, "s3      %s  bucket %s\n", endpoint, o.bucket)
	if o.brokers == 0 && o.s3Endpoint == "" {
		fmt.Fprintf(out, "s3-credentials  AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s\n",
			devAccessKey, devSecretKey, os.Getenv("AWS_REGION"))
	}

	// Brokers.
	var servers []*server.Server
	defer func() {
		for _, s := range servers {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			s.Shutdown(sctx)
			cancel()
		}
	}()
	for i := range o.brokers {
		s, err := server.New(server.Options{
			DataDir:           filepath.Join(o.dir, fmt.Sprintf("broker%d", i)),
			BrokerAddr:        "127.0.0.1:0",
			HTTPAddr:          "127.0.0.1:0",
			AdvertisedAddress: "127.0.0.1",
			ClusterName:       o.clusterName,
			Logger:            log.With("broker", i),
			Metadata:          server.Metadata{Store: "etcd://" + strings.Join(eps, ",")},
			Cluster: &server.Cluster{BrokerID: fmt.Sprintf("broker%d", i), Bucket: o.bucket, Endpoint: endpoint,
				PathStyle: o.pathStyle, LeaseTTL: o.leaseTTL, WALMaxDelay: o.walDelay, Objects: s3},
		})
		if err != nil {
			return fmt.Errorf("broker %d: %w", i, err)
		}
		s.Start()
		servers = append(servers, s)
		fmt.Fprintf(out, "broker  broker%d  %s  %s\n", i, s.BrokerURL(), s.WebURL())
	}
	if o.brokers == 0 {
		fmt.Fprintln(out, "ready: start brokers with mb broker --metadata-store etcd://... --bucket ... --endpoint ... --path-style; Ctrl-C stops etcd and S3")
	} else {
		fmt.Fprintln(out, "ready: clients may connect to any broker; Ctrl-C stops the cluster")
	}
	for _, s := range servers {
		go func() {
			if err := <-s.Err(); err != nil {
				log.Error("broker failed", "err", err)
				stop()
			}
		}()
	}
	<-ctx.Done()
	return nil
}

type devGateway struct {
	endpoint string
	cmd      *exec.Cmd
	exited   chan struct{}
}

func (g *devGateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// versitygwBinary finds the Versity gateway as the test helpers do.
func versitygwBinary() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p, nil
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("no S3 server: the Versity gateway is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0, or set $VERSITYGW), or pass --s3-endpoint with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set")
}

func startDevGateway(ctx context.Context, dir string) (*devGateway, error) {
	bin, err := versitygwBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--access", devAccessKey, "--secret", devSecretKey, "--port", addr, "posix", dir)
	logf, err := os.Create(filepath.Join(dir, "..", "versitygw.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	g := &devGateway{endpoint: "http://" + addr, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(g.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("versitygw exited; see %s", filepath.Join(dir, "..", "versitygw.log"))
		case <-ctx.Done():
			g.stop()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("versitygw not listening on %s after 20 s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.Setenv("AWS_ACCESS_KEY_ID", devAccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", devSecretKey)
	if os.Getenv("AWS_REGION") == "" {
		os.Setenv("AWS_REGION", "us-east-1")
	}
	return g, nil
}
